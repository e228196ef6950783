"""Keeping layers of the shared Q/DQ graph in float: the graph edit, the greedy fallback, the
sensitivity command, and what TensorRT is told about a mixed graph."""

import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from ftedge.graph.coverage import int8_coverage
from ftedge.graph.fallback import float_layers_of, keep_in_float, quantized_layers
from ftedge.quant.sensitivity import float_fallback
from ftedge.runtime.onnxruntime.runner import OrtRunner


@pytest.fixture(scope="module")
def int8_model(qat_run):
    return onnx.load(str(qat_run.run_dir / "model.int8.onnx"))


def test_keep_in_float_edits_only_the_chosen_layers(int8_model):
    layers = quantized_layers(int8_model)
    assert len(layers) == 50
    chosen = [layers[0].name, layers[-1].name]
    mixed = keep_in_float(int8_model, chosen)
    onnx.checker.check_model(mixed, full_check=True)
    cov = int8_coverage(mixed)
    assert sorted(cov["float_layers"]) == sorted(chosen) and cov["int8_layers"] == 48
    meta = {p.key: p.value for p in mixed.metadata_props}
    assert json.loads(meta["ftedge.float_layers"]) == chosen
    # the float weight is exactly what the weight DequantizeLinear produced
    node = next(n for n in mixed.graph.node if (n.name or n.output[0]) == chosen[0])
    w = numpy_helper.to_array(next(t for t in mixed.graph.initializer if t.name == node.input[1]))
    assert w.dtype == np.float32 and np.isfinite(w).all()
    # nothing left dangling: every Q/DQ output is read by something
    used = {i for n in mixed.graph.node for i in n.input} | {o.name for o in mixed.graph.output}
    assert all(n.output[0] in used for n in mixed.graph.node
               if n.op_type in ("QuantizeLinear", "DequantizeLinear"))
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    a, b = OrtRunner(int8_model).infer(x), OrtRunner(mixed).infer(x)
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_greedy_fallback_stops_when_the_gate_passes_or_at_the_cap(int8_model):
    layers = [layer.name for layer in quantized_layers(int8_model)]
    sens = {"layers": [{"layer": n, "logit_error_change": -i, "top1_change_points": 0.0}
                       for i, n in enumerate(layers)]}  # the last layer helps most
    mixed, chosen, steps = float_fallback(
        int8_model, sens, lambda m: (len(int8_coverage(m)["float_layers"]) >= 2,
                                     {"drop_points": 0.0}))
    assert chosen == [layers[-1], layers[-2]] and len(steps) == 2 and mixed is not None
    # a layer is kept only when it lowers the drop; at most 5 kept (10% of 50), 15 tried
    drops = iter([5, 6, 4, 4, 3, 2, 1.5] + [9] * 20)
    mixed, chosen, steps = float_fallback(int8_model, sens,
                                          lambda m: (False, {"drop_points": next(drops)}),
                                          cap_fraction=0.1,
                                          start=(5.5, 1.0))
    assert mixed is None and chosen == [layers[i] for i in (-1, -3, -5, -6, -7)]
    assert [s["kept"] for s in steps] == [True, False, True, False, True, True, True]
    drops = iter([9.0] * 20)
    mixed, chosen, steps = float_fallback(int8_model, sens, lambda m: (False, {"drop_points": 9}),
                                          cap_fraction=0.1, start=(1.5, 1.0))
    assert mixed is None and chosen == [] and len(steps) == 15
    # same drop, smaller logit error: kept (the loss spread over many layers)
    errors = iter([0.9, 0.95, 0.8] + [0.99] * 20)
    mixed, chosen, steps = float_fallback(
        int8_model, sens, lambda m: (False, {"drop_points": 1.5, "logit_error": next(errors)}),
        cap_fraction=0.1, start=(1.5, 1.0))
    assert chosen[:2] == [layers[-1], layers[-3]]


def test_sensitivity_command_and_fallback_end_to_end(qat_run, tmp_path, monkeypatch, capsys):
    import ftedge.quant.gate as gate_module
    from ftedge.quant.gate import gate_int8_model, gate_with_fallback
    from tests.test_cli import run_cli

    run = tmp_path / "run"
    shutil.copytree(qat_run.run_dir, run, ignore=shutil.ignore_patterns("exports", "bench"))
    code, _, err = run_cli(monkeypatch, capsys, "quantize", run, "--sensitivity", "--graph",
                           "qat")
    assert code == 0 and (run / "sensitivity.md").is_file() and (run / "sensitivity.png").is_file()
    sens = json.loads((run / "sensitivity.json").read_text())
    assert len(sens["layers"]) == 50 and sens["graph"] == "model.int8.onnx"
    assert {"layer", "top1_change_points", "logit_error"} <= set(sens["layers"][0])

    def gate_needing_one_float_layer(fp32, int8, path, x, labels, classes, max_drop):
        res = gate_int8_model(fp32, int8, path, x=x, labels=labels, classes=classes,
                              max_drop=max_drop)
        res["passed"] = bool(float_layers_of(path))  # the all-INT8 graph "fails"
        return res

    monkeypatch.setattr(gate_module, "gate_int8_model", gate_needing_one_float_layer)
    x = np.random.default_rng(0).standard_normal((6, 3, 32, 32)).astype(np.float32)
    labels = np.arange(6) % 3
    path = run / "model.int8.onnx"
    fp32 = OrtRunner(run / "model.fp32.onnx").infer(x)
    res = gate_with_fallback(path, OrtRunner(path).infer(x), fp32, x=x, labels=labels,
                             classes=["blue", "green", "red"], max_drop=1.0)
    assert res["passed"] and len(res["fallback"]["float_layers"]) == 1
    assert float_layers_of(path) == res["fallback"]["float_layers"]
    assert not list(run.glob(".*fallback*"))
    gate_module.write_gate(path, res)  # as tune and quantize do: the gate of the mixed graph
    # the mixed graph travels into every artifact, and TensorRT is told it may use FP16
    import ftedge

    monkeypatch.undo()
    art = ftedge.export_run(run, "onnxruntime-cpu", precision="int8", out=tmp_path / "ort",
                            log=lambda m: None)
    assert art.manifest["float_layers"] == res["fallback"]["float_layers"] and art.passed
    ftedge.export_run(run, "jetson-orin-nano", precision="int8", out=tmp_path / "trt",
                            log=lambda m: None)
    plan = json.loads((tmp_path / "trt" / "build_plan.json").read_text())
    assert not plan["strongly_typed"] and plan["fp16"] and plan["int8"]
    assert "--fp16" in (tmp_path / "trt" / "trtexec.sh").read_text()
    assert float_layers_of(tmp_path / "trt" / "model.int8.onnx") == res["fallback"]["float_layers"]
