import pytest

from ftedge.stages.tune.probe import linear_probe
from tests.conftest import write_class_folders


def test_linear_probe_on_frozen_imagenet_features(tmp_path):
    data = write_class_folders(tmp_path / "c", per_class=12)
    res = linear_probe(data=str(data), model="efficientnet_lite0", img_size=32, device="cpu")
    assert res["features"] == 1280 and res["train_images"] + res["val_images"] == 36
    assert res["val_top1"] == pytest.approx(1.0)  # colours: separable by a linear model
    assert "ImageNet" in res["weights"]


def test_probe_command(monkeypatch, capsys, tmp_path):
    from tests.test_cli import run_cli

    data = write_class_folders(tmp_path / "c", per_class=6)
    code, out, _ = run_cli(monkeypatch, capsys, "probe", "--data", data, "--img-size", 32,
                           "--json")
    assert code == 0 and '"val_top1"' in out
