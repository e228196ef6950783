import pytest

from ftedge.training.schedule import lr_factor


def test_warmup_then_cosine_to_floor():
    f = [lr_factor(s, total_steps=100, warmup_steps=10, min_ratio=0.01) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    assert f[-1] == pytest.approx(0.01, abs=1e-3)
    assert lr_factor(55, 100, 10, min_ratio=0.0) == pytest.approx(0.5)


def test_no_warmup():
    assert lr_factor(0, 10, 0, min_ratio=0.0) == pytest.approx(1.0)
