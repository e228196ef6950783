"""`ftedge tune --qat` end to end on a tiny dataset: the Q/DQ graph, the gate, resume."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

import ftedge
from ftedge.graph.metadata import read_metadata
from ftedge.training.checkpoint import load_checkpoint
from tests.conftest import full_range_copy, run_images, tiny_options, write_class_folders


def _graph(path):
    model = onnx.load(str(path))
    producer = {o: n for n in model.graph.node for o in n.output}
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return model, producer, inits


def test_run_holds_both_models_and_the_gate(qat_run):
    run = qat_run.run_dir
    for name in ("model.fp32.onnx", "model.int8.onnx", "gate.json", "gate.md", "qat_best.pt"):
        assert (run / name).is_file(), name
    gate = json.loads((run / "gate.json").read_text())
    assert {"fp32_top1", "int8_top1", "drop_points", "top1_agreement", "mcnemar",
            "per_class", "passed"} <= set(gate)
    assert gate["parity"]["fp32_onnx_vs_torch_max_abs"] < 1e-3
    assert gate["parity"]["int8_onnx_vs_qat_torch_top1_agreement"] >= 0.99
    if importlib.util.find_spec("openvino") is not None:  # the dev extra installs it
        assert gate["openvino"]["passed"] and "OpenVINO (CPU)" in (run / "gate.md").read_text()
        assert 0.0 <= gate["openvino"]["int8_top1"] <= 1.0
    assert [h["phase"] for h in qat_run.history][-2:] == ["qat", "qat"]
    assert qat_run.gate == gate
    summary = json.loads((run / "summary.json").read_text())
    cov = summary["qat"]["coverage"]  # read from model.int8.onnx itself
    assert cov["int8_layers"] == cov["compute_layers"] == 50 and cov["float_layers"] == []
    assert cov["int8_residual_adds"] == cov["residual_adds"] == 9


def test_the_shipped_qat_checkpoint_is_chosen_in_onnx_runtime(qat_run):
    from ftedge.io import sha256_file

    run = qat_run.run_dir
    gate = json.loads((run / "gate.json").read_text())
    sel = gate["qat_checkpoint"]
    qat_epochs = [h["epoch"] for h in qat_run.history if h["phase"] == "qat"]
    assert sorted(c["epoch"] for c in sel["candidates"]) == qat_epochs  # 2 epochs, <= 3 kept
    best = max(sel["candidates"], key=lambda c: (c["onnx_runtime_top1"], c["fake_quant_top1"],
                                                 c["epoch"]))
    assert sel["chosen_epoch"] == best["epoch"]
    assert gate["fallback"]["float_layers"] == []
    assert best["onnx_runtime_top1"] == gate["int8_top1"]  # the graph scored is the one shipped
    assert load_checkpoint(run / "qat_best.pt")["epoch"] == sel["chosen_epoch"]
    meta = read_metadata(run / "model.int8.onnx")
    assert meta["ftedge.checkpoint_sha256"] == sha256_file(run / "qat_best.pt")
    assert not (run / "qat_candidates").exists()
    summary = json.loads((run / "summary.json").read_text())["qat"]
    assert summary["qat_best_epoch"] == sel["chosen_epoch"] and summary["qat_checkpoint"] == sel
    assert f"QAT checkpoint: epoch {sel['chosen_epoch']}," in (run / "gate.md").read_text()


def test_every_conv_and_gemm_reads_int8_weights_and_inputs(qat_run):
    model, producer, inits = _graph(qat_run.run_dir / "model.int8.onnx")
    layers = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm")]
    assert len(layers) == 50
    tops = {True: [], False: []}
    for n in layers:
        x_dq, w_dq = producer[n.input[0]], producer[n.input[1]]
        assert x_dq.op_type == "DequantizeLinear" and w_dq.op_type == "DequantizeLinear"
        w = inits[w_dq.input[0]]
        group = next((a.i for a in n.attribute if a.name == "group"), 1)
        tops[group > 1].append(int(np.abs(w.astype(np.int16)).max()))
        assert w.dtype == np.int8
        axis = next((a.i for a in w_dq.attribute if a.name == "axis"), 1)
        assert axis == 0 and inits[w_dq.input[1]].shape == (w.shape[0],)
    # 7-bit magnitudes by default, but the depthwise convolutions (16 in Lite0) use the full range
    assert len(tops[True]) == 16 and max(tops[False]) <= 64 and min(tops[True]) >= 126
    for n in model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zp = inits[n.input[2]]
            assert zp.dtype == np.int8 and not zp.any()  # symmetric: zero-point 0


def test_residual_adds_read_quantized_shortcuts(qat_run):
    model, producer, _ = _graph(qat_run.run_dir / "model.int8.onnx")
    adds = [n for n in model.graph.node if n.op_type == "Add"
            and any(i in producer and producer[i].op_type == "DequantizeLinear" for i in n.input)]
    assert len(adds) == 9  # every inverted-residual shortcut of EfficientNet-Lite0


def test_onnx_contract_and_size(qat_run):
    run = qat_run.run_dir
    for name, precision in (("model.fp32.onnx", "fp32"), ("model.int8.onnx", "int8")):
        model = onnx.load(str(run / name))
        onnx.checker.check_model(model, full_check=True)
        assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
        meta = read_metadata(run / name)
        assert json.loads(meta["ftedge.classes"]) == ["blue", "green", "red"]
        assert json.loads(meta["ftedge.preprocessing"])["input_size"] == [3, 32, 32]
        assert meta["ftedge.precision"] == precision and len(meta["ftedge.checkpoint_sha256"]) == 64
    ratio = (run / "model.int8.onnx").stat().st_size / (run / "model.fp32.onnx").stat().st_size
    assert ratio <= 0.3


def test_qat_checkpoint_carries_the_quantization_scheme(qat_run):
    ckpt = torch.load(qat_run.run_dir / "qat_best.pt", weights_only=True)
    assert "per-channel" in ckpt["quantization"]["weights"]
    assert "full int8 range" in ckpt["quantization"]["depthwise_weights"]
    assert ckpt["quantization"]["quantized_layers"] == 50


@pytest.mark.slow
def test_resume_inside_the_qat_stage(tmp_path):
    data = write_class_folders(tmp_path / "c", per_class=5)  # 1 val image per class: 1 step an epoch
    opts = dict(tiny_options(tmp_path), qat=True, qat_epochs=2, epochs=2)
    ftedge.tune(data=str(data), **dict(opts, out=str(tmp_path / "full")))

    def crash_in_qat(row):
        if row["phase"] == "qat":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ftedge.tune(data=str(data), callbacks=[crash_in_qat], **dict(opts, out=str(tmp_path / "cut")))
    assert (tmp_path / "cut" / "qat_candidates").is_dir()  # kept for the resumed run
    resumed = ftedge.tune(resume=tmp_path / "cut")
    assert [h["phase"] for h in resumed.history] == ["head", "full", "qat", "qat"]
    chose = [json.loads((tmp_path / r / "gate.json").read_text())["qat_checkpoint"]
             for r in ("full", "cut")]
    assert chose[0] == chose[1] and len(chose[1]["candidates"]) == 2
    a = load_checkpoint(tmp_path / "full" / "last.pt")["model_state"]
    b = load_checkpoint(tmp_path / "cut" / "last.pt")["model_state"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.slow
def test_qat_epochs_follow_the_dataset_size_when_not_given(tmp_path, monkeypatch):
    import ftedge.config as C
    from ftedge.console import console

    monkeypatch.setattr(C, "QAT_DEFAULT_EPOCHS", 1)
    monkeypatch.setattr(C, "QAT_MIN_STEPS", 5)  # 3 steps per epoch here: needs 2 epochs
    data = write_class_folders(tmp_path / "c", per_class=12)
    with console.capture() as captured:
        result = ftedge.tune(data=str(data), **dict(tiny_options(tmp_path), qat=True, epochs=2,
                                                    max_drop=100.0))
    train = json.loads((result.run_dir / "split.json").read_text())["train"]
    expected = -(-5 // (len(train) // 8))
    assert expected > 1
    assert [h["phase"] for h in result.history].count("qat") == expected
    out = " ".join(captured.get().split())
    assert f"{expected} QAT epochs (qat.epochs auto" in out
    qat = json.loads((result.run_dir / "summary.json").read_text())["qat"]
    assert qat["qat_epochs_planned"] == qat["qat_epochs_run"] == expected
    assert f"{expected} of {expected} QAT epochs run" in out


@pytest.mark.slow
def test_a_damaged_qat_candidate_is_named_and_the_others_are_scored(tmp_path):
    from ftedge.console import console

    data = write_class_folders(tmp_path / "c", per_class=5)  # 1 val image per class: 1 step an epoch

    def damage_one(row):
        if row["phase"] == "qat" and row["epoch"] == 5:  # 2 FP32 + 3 QAT epochs: the last
            (tmp_path / "run" / "qat_candidates" / "epoch_004.pt").write_bytes(b"not a model")

    with console.capture() as captured:
        result = ftedge.tune(data=str(data), callbacks=[damage_one],
                             **dict(tiny_options(tmp_path), qat=True, epochs=2, qat_epochs=3,
                                    max_drop=100.0))
    out = " ".join(captured.get().split())
    assert "QAT candidate epoch 4 not scored: cannot load" in out
    sel = json.loads((result.run_dir / "gate.json").read_text())["qat_checkpoint"]
    assert sorted(c["epoch"] for c in sel["candidates"]) == [3, 5]
    assert sel["chosen_epoch"] in (3, 5) and not (result.run_dir / "qat_candidates").exists()


@pytest.mark.slow
def test_early_stopping_does_not_cut_qat_short(tmp_path):
    """patience ends the FP32 stage, never QAT: its LR schedule runs to the end."""
    from ftedge.console import console

    data = write_class_folders(tmp_path / "c", per_class=5)  # 1 val image per class: 1 step an epoch
    with console.capture() as captured:
        result = ftedge.tune(data=str(data), **dict(tiny_options(tmp_path), qat=True, epochs=2,
                                                    qat_epochs=6, patience=1, max_drop=100.0))
    qat = json.loads((result.run_dir / "summary.json").read_text())["qat"]
    assert [h["phase"] for h in result.history].count("qat") == 6
    assert qat["qat_epochs_planned"] == qat["qat_epochs_run"] == 6
    assert "qat_stopped_early" not in qat
    assert "6 of 6 QAT epochs run" in " ".join(captured.get().split())
    lrs = [h["lr"] for h in result.history if h["phase"] == "qat"]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.1 * lrs[0]  # annealed to the end


def test_openvino_runs_the_int8_graph_with_int8_convolutions(qat_run):
    ov = pytest.importorskip("openvino", reason="OpenVINO is not installed")
    from ftedge.quant.gate import onnx_logits

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(qat_run.run_dir / "model.int8.onnx")),
                                  "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    convs = [op.get_rt_info()["runtimePrecision"].astype(str)
             for op in compiled.get_runtime_model().get_ordered_ops()
             if op.get_rt_info()["layerType"].astype(str) == "Convolution"]
    assert len(convs) == 49 and set(convs) <= {"u8", "i8"}  # no FP32 fallback
    # Real images: OpenVINO's u8 x s8 kernels agree with ONNX Runtime's S8S8 path (which
    # matches the QAT model), i.e. the 7-bit weights do not overflow on this CPU.
    x = np.concatenate([b for b in run_images(qat_run)])
    ov_logits = compiled(x)[0]
    ort_logits = onnx_logits(qat_run.run_dir / "model.int8.onnx", x)
    assert np.abs(ov_logits - ort_logits).max() < 0.1 * np.abs(ort_logits).max()
    assert (ov_logits.argmax(1) == ort_logits.argmax(1)).all()


_OV_ISA_PROBE = """
import sys, numpy as np, openvino as ov
x = np.load(sys.argv[1])
core = ov.Core()
for path in sys.argv[2:]:
    c = core.compile_model(core.read_model(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    np.save(path + ".ov.npy", c(x)[0])
"""


def test_int8_graph_does_not_saturate_on_cpus_without_vnni(qat_run, tmp_path):
    """OpenVINO limited to AVX2 (ONEDNN_MAX_CPU_ISA: no VNNI, u8 x s8 in 16-bit pair sums, as
    on such CPUs) agrees with ONNX Runtime's exact path on the shipped graph, full-range
    depthwise weights included; the same graph with full-range pointwise weights does not
    (so the emulation is active and the 7-bit limit is what keeps the graph safe)."""
    import os
    import subprocess
    import sys

    pytest.importorskip("openvino", reason="OpenVINO is not installed")
    from ftedge.quant.gate import onnx_logits

    x = np.concatenate([b for b in run_images(qat_run)])
    np.save(tmp_path / "x.npy", x)
    shipped, wide = qat_run.run_dir / "model.int8.onnx", tmp_path / "wide.int8.onnx"
    full_range_copy(shipped, wide)
    probe = [tmp_path / "shipped.onnx", wide]
    probe[0].write_bytes(shipped.read_bytes())
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    subprocess.run([sys.executable, "-c", _OV_ISA_PROBE, str(tmp_path / "x.npy"),
                    *map(str, probe)], env=env, check=True)
    errors = []
    for path in probe:
        ort_logits = onnx_logits(path, x)
        ov_logits = np.load(str(path) + ".ov.npy")
        errors.append((float(np.abs(ov_logits - ort_logits).max() / np.abs(ort_logits).max()),
                       float((ov_logits.argmax(1) == ort_logits.argmax(1)).mean())))
    assert errors[0][0] < 0.1 and errors[0][1] == 1.0, errors
    assert errors[1][0] > 0.3, errors  # saturated: the check can fail


def test_qat_with_distillation_from_the_fp32_model_and_minmax_ranges(tmp_path):
    import ftedge
    from ftedge.stages.tune.qat_stage import DistillLoss
    from tests.conftest import tiny_options, write_class_folders

    data = write_class_folders(tmp_path / "c", per_class=5)  # 1 val image per class: 1 step an epoch
    cfg = tmp_path / "minmax.yaml"  # the other way to start QAT's ranges, exercised here
    cfg.write_text("qat:\n  init: minmax\n")
    res = ftedge.tune(config_file=str(cfg), data=str(data),
                      **dict(tiny_options(tmp_path), epochs=2, qat=True, qat_epochs=1,
                             distill=True))
    assert res.gate is not None and np.isfinite(res.history[-1]["train_loss"])
    import torch

    teacher = torch.nn.Linear(4, 3)
    loss = DistillLoss(teacher, torch.nn.CrossEntropyLoss(), 2.0, weight=1.0)
    x = torch.randn(5, 4)
    assert loss(teacher(x), torch.zeros(5, dtype=torch.long), x).item() < 1e-6  # same logits


def test_distillation_is_the_default_and_can_be_turned_off():
    from types import SimpleNamespace

    from ftedge.config import QatConfig, TrainConfig, build_tune_config, load_yaml
    from ftedge.stages.tune.qat_stage import DistillLoss, qat_criterion

    assert QatConfig().distill
    assert not build_tune_config(None, {"qat": {"distill": False}}).qat.distill
    demo = load_yaml(Path(ftedge.__file__).parent / "configs" / "demo.yaml")
    assert demo["qat"]["distill"] is False  # the digits demo as measured
    teacher = torch.nn.Linear(4, 3)
    for distill, kind in ((True, DistillLoss), (False, torch.nn.CrossEntropyLoss)):
        cfg = SimpleNamespace(qat=QatConfig(distill=distill), train=TrainConfig())
        assert type(qat_criterion(cfg, lambda: teacher)) is kind


def test_qat_can_start_from_the_ptq_model_with_fixed_ranges(tmp_path):
    """qat.init ptq: the activation ranges QAT ends with are the entropy-calibrated ones of the
    FP32 best model on the training images, unchanged by training."""
    import copy

    from ftedge.data.transforms import preprocess_samples
    from ftedge.formats.run import RunFolder
    from ftedge.quant.ptq import set_activation_ranges
    from ftedge.quant.qat import input_quantizers, prepare_qat
    from ftedge.runtime.pytorch.runner import load_run
    from ftedge.stages.tune.qat_stage import ptq_start_samples
    from tests.conftest import tiny_options, write_class_folders

    data = write_class_folders(tmp_path / "c", per_class=5)  # 1 val image per class: 1 step an epoch
    cfg = tmp_path / "c.yaml"
    cfg.write_text("qat:\n  init: ptq\n")
    res = ftedge.tune(config_file=str(cfg), data=str(data),
                      **dict(tiny_options(tmp_path), epochs=2, qat=True, qat_epochs=2))
    assert res.gate is not None
    loaded = load_run(res.run_dir)
    samples = ptq_start_samples(RunFolder(res.run_dir).samples("train", loaded.classes))
    model = copy.deepcopy(loaded.runner.model)
    x = torch.from_numpy(preprocess_samples(samples, loaded.contract))
    prepare_qat(model, x[:2], weight_bits=7)
    set_activation_ranges(model, [x[i:i + 32] for i in range(0, len(x), 32)], "entropy")
    expected = [float(q.scale) for q in input_quantizers(model)]
    state = torch.load(res.run_dir / "qat_best.pt", weights_only=True)["model_state"]
    names = [n for n, m in model.named_modules() if m in set(input_quantizers(model))]
    got = [float(state[f"{n}.scale"]) for n in names]
    assert got == pytest.approx(expected, rel=1e-4)



@pytest.mark.slow
def test_resuming_a_qat_run_from_before_full_range_depthwise_keeps_its_rule(tmp_path):
    """last.pt records the depthwise rule; a QAT stage begun by an older ftedge (no record)
    resumes with 7-bit depthwise weights as it began, instead of switching mid-training."""
    from ftedge.formats.checkpoint import atomic_torch_save

    data = write_class_folders(tmp_path / "c", per_class=5)  # 1 val image per class: 1 step an epoch
    opts = dict(tiny_options(tmp_path), qat=True, qat_epochs=2, epochs=2, max_drop=100.0)

    def crash_in_qat(row):
        if row["phase"] == "qat":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ftedge.tune(data=str(data), callbacks=[crash_in_qat], **dict(opts, out=str(tmp_path / "r")))
    last = torch.load(tmp_path / "r" / "last.pt", weights_only=True)
    del last["quantization"]["depthwise_weights"]
    atomic_torch_save(last, tmp_path / "r" / "last.pt")
    ftedge.tune(resume=tmp_path / "r")
    state = torch.load(tmp_path / "r" / "last.pt", weights_only=True)["model_state"]
    tops = {True: 0, False: 0}  # depthwise or not: largest weight code of the last QAT epoch
    for key, w in state.items():
        if key.endswith("parametrizations.weight.original") and w.dim() == 4:
            scale = state[key.replace(".original", ".0.scale")].reshape(-1, 1, 1, 1)
            dw = w.shape[1] == 1 and w.shape[0] > 1
            tops[dw] = max(tops[dw], int((w / scale).round().abs().max()))
    assert 63 <= tops[True] <= 64 and 63 <= tops[False] <= 64  # the top code: 63.5 rounded


@pytest.mark.slow
def test_a_qat_run_whose_fp32_stage_ended_head_only_resumes_and_trains_every_weight(tmp_path):
    """--epochs 1 (= head_epochs): the backbone was frozen when QAT began. QAT trains every
    weight, and a kill inside the QAT stage resumes to the end (it raised a ValueError:
    the saved optimizer held the head alone); resuming the finished run changes nothing."""
    data = write_class_folders(tmp_path / "c", per_class=5)  # 1 val image per class: 1 step an epoch
    opts = dict(tiny_options(tmp_path), qat=True, qat_epochs=2, epochs=1, head_epochs=1,
                max_drop=100.0)

    def crash_in_qat(row):
        if row["phase"] == "qat":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ftedge.tune(data=str(data), callbacks=[crash_in_qat], **dict(opts, out=str(tmp_path / "r")))
    last = torch.load(tmp_path / "r" / "last.pt", weights_only=True)
    n_trainable = len(last["train_state"]["optimizer"]["param_groups"][0]["params"])
    resumed = ftedge.tune(resume=tmp_path / "r")
    assert [h["phase"] for h in resumed.history] == ["head", "qat", "qat"]
    assert resumed.gate is not None and (tmp_path / "r" / "model.int8.onnx").is_file()
    heads = sum(1 for k in last["model_state"] if "classifier" in k and "weight" in k)
    assert n_trainable > 10 * max(1, heads)  # the backbone's weights too, not the head alone
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "r").iterdir()}
    again = ftedge.tune(resume=tmp_path / "r")
    assert again.gate["passed"] == resumed.gate["passed"]
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "r").iterdir()} == before
