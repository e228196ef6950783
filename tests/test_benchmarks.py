"""Every benchmark script still imports and parses its arguments (they are not run in CI:
speed goals live there, measured side by side in one run, never in tests)."""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).parents[1] / "benchmarks").glob("*.py"))

# Each script as `python SCRIPT --help` runs it, all in one interpreter: a fresh one per script
# spent ~3 s importing torch and onnx again, 25 times. Every script still runs its own code
# top to bottom (runpy, run_name "__main__"), with its own folder first on sys.path and the
# sys.path, argv and output of the ones before it put back.
_RUN_ALL = r"""
import contextlib, io, json, os, runpy, sys, traceback
base, out = sys.path[1:], {}  # without -c's "" (the current folder): as `python SCRIPT`
for script in sys.argv[1:]:
    stdout, stderr, code = io.StringIO(), io.StringIO(), 0
    sys.path[:], sys.argv = [os.path.dirname(script)] + base, [script, "--help"]
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        code = 1
        stderr.write(traceback.format_exc())
    out[script] = [code, stdout.getvalue(), stderr.getvalue()]
sys.__stdout__.write(json.dumps(out))
"""


@pytest.fixture(scope="module")
def helps() -> dict[str, list]:
    import json

    proc = subprocess.run([sys.executable, "-c", _RUN_ALL, *map(str, SCRIPTS)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_benchmark_script_starts(script, helps):
    code, out, err = helps[str(script)]
    assert code == 0, err[-2000:]
    assert "usage" in out.lower()


def test_pair_rule_exports_the_weights_it_trained(tmp_path, monkeypatch):
    """benchmarks/pair_weights.py: QAT under the pair rule writes INT8 pointwise weights whose
    input-channel pairs sum to at most 128 (no u8 x s8 overflow without VNNI), on a grid finer
    than 7 bits, and the exported graph computes what the fake-quantized model computed."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch
    from onnx import numpy_helper
    from torch import nn

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "benchmarks"))
    from pair_weights import max_pair_sum, pair_codes, pair_rule, pair_scale

    from ftedge.quant.onnx_export import export_onnx
    from ftedge.quant.qat import calibrate_activations, prepare_qat

    w = torch.randn(16, 33) * torch.linspace(0.1, 3, 33)
    codes = pair_codes(w, pair_scale(w))
    padded = torch.nn.functional.pad(codes, (0, 1)).abs()
    assert (padded[:, 0::2] + padded[:, 1::2]).max() <= 128 and codes.abs().max() > 64

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(16, 33, 1), nn.ReLU(),
                          nn.Conv2d(33, 33, 3, padding=1, groups=33), nn.ReLU(),
                          nn.Conv2d(33, 24, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(24, 5)).eval()
    x = torch.randn(8, 3, 32, 32)
    with pair_rule():
        prepare_qat(model, x[:2])
    calibrate_activations(model, [(x, None)], lambda t: t)
    model.train()
    model(x)  # the observers set the pair scales
    model.eval()
    with torch.no_grad():
        expected = model(x).numpy()
    path = tmp_path / "pair.onnx"
    export_onnx(model, x[:1], path, opset=17, metadata={})
    assert max_pair_sum(path) <= 128
    stored = onnx.load(str(path)).graph.initializer
    pointwise = [numpy_helper.to_array(t).astype(int) for t in stored
                 if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4 and t.dims[1] > 1
                 and t.dims[2:] == [1, 1]]
    assert len(pointwise) == 2 and max(abs(q).max() for q in pointwise) > 64  # not 7-bit
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.abs(got - expected).max() < 0.05 * np.abs(expected).max()


def test_few_shot_keeps_the_same_training_photos_with_a_bigger_val(monkeypatch):
    """benchmarks/real_photo_sets.py --shots K [--rest-to-val]: the K training photos per class
    are the same either way; the ones left out join val only when asked."""
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "benchmarks"))
    from real_photo_sets import Item, few_shot

    items = [Item(f"{c}/t{i}.jpg", c, "train") for c in "ab" for i in range(6)]
    items += [Item(f"{c}/v{i}.jpg", c, "val") for c in "ab" for i in range(2)]
    small, big = few_shot(items, 2, 0), few_shot(items, 2, 0, rest_to_val=True)
    train = sorted(i.path for i in small if i.split == "train")
    assert len(train) == 4 and train == sorted(i.path for i in big if i.split == "train")
    assert sum(i.split == "val" for i in small) == 4 and sum(i.split == "val" for i in big) == 12
    assert sorted(i.path for i in big) == sorted(i.path for i in items)  # nothing lost or doubled


def test_calibration_table_compares_calibrators_on_the_same_held_out_folds(monkeypatch):
    """benchmarks/calibration_table.py --compare: temperature and vector scaling, cross-fitted;
    on logits whose calibrating temperature is 3, both beat no calibration held out."""
    import numpy as np

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "benchmarks"))
    import calibration_table

    from ftedge.metrics import softmax

    rng = np.random.default_rng(0)
    z = rng.normal(0, 4, (1500, 6))
    labels = np.array([rng.choice(6, p=p) for p in softmax(z, 3.0)])
    out = calibration_table.compare(z, labels, folds=5, seed=0)
    assert set(out) == {"none", "temperature", "vector"}
    assert out["temperature"]["ece"] < out["none"]["ece"] / 3
    assert out["temperature"]["nll"] < out["none"]["nll"] and out["vector"]["nll"] < out["none"]["nll"]
    assert out["temperature"]["top1"] == out["none"]["top1"]  # T never changes the class
