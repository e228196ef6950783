"""ftedge export end to end on a tiny QAT run: artifacts, manifests, parity, atomic folders."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from ftedge.errors import RunError
from ftedge.io import sha256_file
from ftedge.runtime import PixelInputRunner
from ftedge.runtime.base import ExportError
from ftedge.stages.export.exporter import export_run
from ftedge.stages.inference import evaluate, open_model, predict
from ftedge.runtime.pytorch.runner import load_run


@pytest.fixture(scope="module")
def ort_exports(qat_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("ort")
    return {p: export_run(qat_run.run_dir, "onnxruntime-cpu", precision=p, out=root / p,
                          log=lambda m: None)
            for p in ("fp32", "fp16", "int8")}


def test_manifest_carries_the_contract(ort_exports, qat_run):
    m = ort_exports["int8"].manifest
    run = load_run(qat_run.run_dir)
    assert m["classes"] == run.classes and m["preprocessing"] == run.contract
    assert m["precision"] == "int8" and m["opset"] == 17 and m["input_shape"][0] == "dynamic"
    assert m["source"]["kind"] == "qat" and len(m["source"]["checkpoint_sha256"]) == 64
    assert {"ftedge", "torch", "onnx", "onnxruntime"} <= set(m["versions"])
    assert {f for f in m["files"] if not f.startswith("deploy/")} == {
        "model.int8.onnx", "parity.json", "confidence.json", "reliability.png"}
    assert {"deploy/infer.py", "deploy/labels.txt", "deploy/README.md"} <= set(m["files"])
    props = {p.key: p.value for p in onnx.load(str(ort_exports["int8"].folder /
                                                   "model.int8.onnx")).metadata_props}
    assert json.loads(props["ftedge.classes"]) == run.classes and props["ftedge.target"]


def test_each_artifact_is_calibrated_on_its_own_val_logits(ort_exports, qat_run):
    from ftedge.confidence import fit_temperature
    from ftedge.data.transforms import preprocess_samples
    from ftedge.formats.run import RunFolder
    from ftedge.runtime import infer_batches

    samples = RunFolder(qat_run.run_dir).samples("val", load_run(qat_run.run_dir).classes)
    labels = np.array([s.label for s in samples])
    for precision, result in ort_exports.items():
        record = result.manifest["calibration"]
        assert record == json.loads((result.folder / "confidence.json").read_text())
        assert record["method"] == "temperature" and record["on_artifact"] is True
        assert record["n"] == len(samples) and "the artifact itself" in record["fitted_on"]
        loaded = open_model(result.folder)
        logits = infer_batches(loaded.runner, preprocess_samples(samples, loaded.contract))
        assert record["temperature"] == pytest.approx(fit_temperature(logits, labels), rel=1e-4)
        assert (result.folder / "reliability.png").read_bytes()[:4] == b"\x89PNG"


def test_parity_numbers_per_precision(ort_exports):
    fp32, fp16, int8 = (ort_exports[p].manifest["parity"] for p in ("fp32", "fp16", "int8"))
    assert fp32["passed"] and fp32["top1_agreement"] == 1.0 and fp32["max_abs_logit_diff"] <= 1e-3
    assert fp16["passed"] and fp16["top1_agreement"] >= 0.995
    assert int8["passed"] and int8["top1_agreement_within_noise"] >= 0.99
    assert int8["limits"] == {"top1_agreement_within_noise": 0.99}
    assert "QAT" in int8["reference"] and int8["n"] > 0


def test_int8_parity_noise_is_quantization_alone_and_a_broken_artifact_fails(
        ort_exports, qat_run, tmp_path, monkeypatch):
    from ftedge.runtime.onnxruntime import target as onnx_target
    from ftedge.quant.reference import qat_reference
    from ftedge.runtime import infer_batches
    from tests.conftest import run_images

    loaded = load_run(qat_run.run_dir)
    parity = ort_exports["int8"].manifest["parity"]
    x = np.concatenate(run_images(qat_run))[:parity["n"]]  # the val images come first
    quantized = infer_batches(qat_reference(loaded), x)
    twin = infer_batches(qat_reference(loaded, quantized=False), x)
    assert abs(parity["int8_noise_logit"] - np.abs(quantized - twin).mean()) < 1e-5
    assert parity["int8_noise_logit"] > 0

    real_runner = onnx_target.OnnxRuntimeTarget.runner

    class Broken:  # every 4th image ranked backwards: its top-1 is the reference's last class
        def __init__(self, inner):
            self.inner = inner

        def infer(self, batch):
            out = self.inner.infer(batch)
            out[::4] = -out[::4]
            return out

    monkeypatch.setattr(onnx_target.OnnxRuntimeTarget, "runner",
                        lambda self, *a, **k: Broken(real_runner(self, *a, **k)))
    res = export_run(qat_run.run_dir, "onnxruntime-cpu", precision="int8", out=tmp_path / "broken",
                     log=lambda m: None)
    p = res.manifest["parity"]
    assert res.passed is False and p["flips_beyond_noise"] >= p["n"] // 4 - 1, p


def test_ort_int8_artifact_runs_integer_kernels(ort_exports):
    from ftedge.runtime.onnxruntime.runner import executed_ops

    ops = executed_ops(ort_exports["int8"].folder / "model.int8.onnx")
    # Lite0 has 49 convolutions: all run as QLinearConv (the last one's output is quantized for
    # the global pooling), and the 9 residual Adds as QLinearAdd.
    assert ops["QLinearConv"] == 49 and ops["QLinearAdd"] == 9, ops
    assert not ops.get("Conv") and not ops.get("FusedConv"), ops


def test_eval_and_predict_work_on_artifacts(ort_exports, qat_run):
    on_run = evaluate(qat_run.run_dir)
    on_artifact = evaluate(ort_exports["fp32"].folder)
    assert on_artifact["n"] == on_run["n"] and on_artifact["top1"] == on_run["top1"]
    image = next(Path(qat_run.run_dir).parent.glob("colours/*/*.png"))
    top = predict(ort_exports["int8"].folder, [image], topk=2)[0]["top"]
    assert len(top) == 2 and 0 < top[0]["prob"] <= 1


def test_predict_and_eval_apply_the_manifest_temperature(ort_exports, qat_run, capsys):
    from ftedge.data.transforms import preprocess_image
    from ftedge.metrics import softmax

    folder = ort_exports["int8"].folder
    t = ort_exports["int8"].manifest["calibration"]["temperature"]
    images = sorted(Path(qat_run.run_dir).parent.glob("colours/*/*.png"))[:3]
    out = predict(folder, images, topk=3)
    loaded = open_model(folder)
    for r, image in zip(out, images):
        want = softmax(loaded.runner.infer(preprocess_image(image, loaded.contract)) / t)[0]
        assert r["temperature"] == t
        for entry in r["top"]:
            assert entry["prob"] == pytest.approx(want[loaded.classes.index(entry["class"])],
                                                  abs=1e-6)
    assert "T = 1" not in capsys.readouterr().err
    cal = evaluate(folder)["calibration"]
    assert cal["calibrated"] and cal["temperature"] == t and cal["in_sample"]
    assert cal["heldout"]["ece_after"] == ort_exports["int8"].manifest["calibration"]["ece_after"]


def test_an_old_manifest_without_calibration_loads_with_t_1_said_plainly(ort_exports, tmp_path,
                                                                         capsys, qat_run):
    from ftedge.formats.artifact import MANIFEST, digests

    copy = tmp_path / "old"
    shutil.copytree(ort_exports["fp32"].folder, copy)
    body = json.loads((copy / MANIFEST).read_text())
    body = {k: v for k, v in body.items() if k not in ("calibration", "digest", "section_digests")}
    (copy / MANIFEST).write_text(json.dumps({**body, **digests(body)}))
    loaded = open_model(copy)
    assert loaded.manifest.calibration is None
    image = next(Path(qat_run.run_dir).parent.glob("colours/*/*.png"))
    capsys.readouterr()
    (r,) = predict(copy, [image], topk=1)
    assert r["temperature"] == 1.0
    assert "no calibration" in capsys.readouterr().err
    rep = evaluate(copy)["calibration"]
    assert not rep["calibrated"] and rep["temperature"] == 1.0
    assert rep["ece_after"] == rep["ece_before"]


def test_tampered_artifact_is_refused(ort_exports, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(ort_exports["fp32"].folder, copy)
    with open(copy / "model.fp32.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ExportError, match="changed since export"):
        open_model(copy)


def test_failed_export_leaves_nothing_and_existing_folders_survive(qat_run, tmp_path, monkeypatch):
    from ftedge.runtime.onnxruntime import target as onnx_target

    out = tmp_path / "a"

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(onnx_target.OnnxRuntimeTarget, "export", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        export_run(qat_run.run_dir, "onnxruntime-cpu", precision="fp32", out=out,
                   log=lambda m: None)
    assert list(tmp_path.iterdir()) == []  # no folder, no hidden temp folder
    monkeypatch.undo()
    export_run(qat_run.run_dir, "onnxruntime-cpu", precision="fp32", out=out, log=lambda m: None)
    with pytest.raises(RunError, match="--force"):
        export_run(qat_run.run_dir, "onnxruntime-cpu", precision="fp32", out=out,
                   log=lambda m: None)
    export_run(qat_run.run_dir, "onnxruntime-cpu", precision="fp32", out=out, force=True,
               log=lambda m: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


@pytest.mark.parametrize("name, precision, damage", [
    ("model.int8.onnx", "int8", "truncate"), ("model.int8.onnx", "int8", "garbage"),
    ("model.fp32.onnx", "fp32", "truncate"), ("model.fp32.onnx", "fp32", "garbage")])
def test_a_damaged_run_graph_is_a_clear_error(qat_run, tmp_path, monkeypatch, capsys, name,
                                              precision, damage):
    from tests.test_cli import run_cli

    run = tmp_path / "run"
    shutil.copytree(qat_run.run_dir, run, ignore=shutil.ignore_patterns("exports", "bench"))
    if damage == "truncate":
        with open(run / name, "r+b") as f:
            f.truncate(100_000)
    else:
        (run / name).write_text("garbage\n")
    code, out, err = run_cli(monkeypatch, capsys, "export", run, "--target", "onnxruntime-cpu",
                             "--precision", precision)
    err = " ".join(err.split())
    assert code == 2 and f"{name} is damaged" in err and "How to fix" in err
    assert "Traceback" not in err and not (run / "exports").exists()


def test_static_batch_artifact_takes_any_number_of_images(qat_run, tmp_path):
    res = export_run(qat_run.run_dir, "onnxruntime-cpu", precision="fp32", batch=4,
                     out=tmp_path / "b4",
                     log=lambda m: None)
    dim = onnx.load(str(tmp_path / "b4" / "model.fp32.onnx")).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_value == 4 and res.manifest["input_shape"][0] == 4 and res.passed


def test_openvino_artifacts_and_benchmark_app(qat_run, tmp_path):
    pytest.importorskip("openvino", reason="OpenVINO is not installed (extra: openvino)")
    from ftedge.runtime.openvino.runner import conv_precisions

    res = {p: export_run(qat_run.run_dir, "openvino-cpu", precision=p, batch=1, out=tmp_path / p,
                         log=lambda m: None) for p in ("fp32", "fp16", "int8")}
    assert all(r.passed for r in res.values()), {p: r.manifest["parity"] for p, r in res.items()}
    assert res["fp32"].manifest["parity"]["max_abs_logit_diff"] <= 1e-3
    assert (tmp_path / "fp16" / "model.bin").stat().st_size < 0.6 * (
        tmp_path / "fp32" / "model.bin").stat().st_size  # FP16-compressed weights
    runner = open_model(tmp_path / "int8").runner
    precisions = conv_precisions(getattr(runner, "inner", runner).compiled)  # batch 1: wrapped
    assert sum(precisions.values()) == 49 and set(precisions) <= {"u8", "i8"}, precisions
    app = shutil.which("benchmark_app") or str(Path(sys.executable).parent / "benchmark_app")
    proc = subprocess.run([app, "-m", str(tmp_path / "int8" / "model.xml"), "-d", "CPU",
                           "-niter", "20", "-api", "sync", "-nireq", "1", "-nstreams", "1", "-hint", "none",
                           "-nthreads", "2"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Median:" in proc.stdout and "Throughput:" in proc.stdout



def test_int8_with_8bit_weights_says_which_cpus_it_needs(qat_run, tmp_path, monkeypatch, capsys):
    """A graph whose non-depthwise weights use the full 8-bit range (qat.weight_bits: 8) is
    wrong in OpenVINO on x86 CPUs without VNNI (u8 x s8 pair sums saturate), and in ONNX
    Runtime there unless QDQS8ToU8Transformer is off (as ftedge and infer.py do): the exports
    warn, the manifests and deploy READMEs say so, and OpenVINO's infer.py and bench name it
    on such a CPU. The default 7-bit graph carries no caveat."""
    pytest.importorskip("openvino", reason="OpenVINO is not installed (extra: openvino)")
    import importlib.util

    from ftedge.stages.bench.bench import BenchOptions, bench
    from ftedge.stages.inference import evaluate, predict
    from ftedge.stages.bench.report import markdown
    from tests.conftest import full_range_copy

    run = tmp_path / "run"
    shutil.copytree(qat_run.run_dir, run)
    full_range_copy(qat_run.run_dir / "model.int8.onnx", run / "model.int8.onnx")
    gate = json.loads((run / "gate.json").read_text())  # as if this graph had been gated
    gate["graph_sha256"] = sha256_file(run / "model.int8.onnx")
    (run / "gate.json").write_text(json.dumps(gate))
    said = []
    wide = {t: export_run(run, t, precision="int8", out=tmp_path / t, log=said.append)
            for t in ("openvino-cpu", "onnxruntime-cpu")}
    for t, res in wide.items():
        graph = res.manifest["extra"]["graph"]
        assert graph["weight_max_abs"] > 64 and graph["saturates_without_vnni"] is True
        assert [m for m in said if m.startswith(f"warning: {t} int8") and "VNNI" in m]
        readme = (res.folder / "deploy" / "README.md").read_text()
        assert "**Which CPUs:**" in readme
    assert "do not serve this model with it" in (tmp_path / "onnxruntime-cpu/deploy/README.md"
                                                 ).read_text()  # Triton's onnxruntime backend
    narrow = export_run(qat_run.run_dir, "openvino-cpu", precision="int8", out=tmp_path / "narrow",
                        log=lambda m: None)
    assert not narrow.manifest["extra"]["graph"].get("saturates_without_vnni")
    assert "Which CPUs" not in (narrow.folder / "deploy" / "README.md").read_text()

    infer_py = tmp_path / "openvino-cpu" / "deploy" / "infer.py"
    spec = importlib.util.spec_from_file_location("infer_wide", infer_py)
    infer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(infer)
    monkeypatch.setattr(infer, "vnni_state", lambda: "no-vnni")
    infer.Model(tmp_path / "openvino-cpu", infer.load_manifest(tmp_path / "openvino-cpu"))
    assert "x86 CPU (no VNNI)" in capsys.readouterr().err  # the device-side script says so too

    import ftedge.runtime.artifact as artifact_module  # where host_note reads the CPU
    monkeypatch.setattr(artifact_module, "cpu_int8_without_vnni", lambda: "no-vnni")
    opts = BenchOptions(batches=(1,), warmup=1, runs=3, e2e_images=2, camera_images=0)
    rep = bench([tmp_path / "openvino-cpu", tmp_path / "onnxruntime-cpu", tmp_path / "narrow"],
                opts=opts)
    notes = {Path(a["artifact"]).name: a.get("cpu_note") for a in rep["artifacts"]}
    assert "without VNNI" in notes["openvino-cpu"]
    assert notes["onnxruntime-cpu"] is None and notes["narrow"] is None  # ftedge's ORT is exact
    assert "this host is an x86 CPU without VNNI" in markdown(rep)
    capsys.readouterr()
    # eval and predict say it too: on stderr, and in eval's report
    assert "without VNNI" in evaluate(tmp_path / "openvino-cpu")["cpu_note"]
    assert "warning: openvino-cpu: this host is an x86 CPU without VNNI" in capsys.readouterr().err
    assert "cpu_note" not in evaluate(tmp_path / "onnxruntime-cpu")
    image = next(iter(sorted((qat_run.run_dir.parent / "colours").rglob("*.png"))))
    predict(tmp_path / "openvino-cpu", [image])
    assert "without VNNI" in capsys.readouterr().err
    predict(tmp_path / "narrow", [image])
    assert "VNNI" not in capsys.readouterr().err


def test_openvino_cpu_without_vnni_follows_the_cpu_and_onednn_isa(monkeypatch):
    """The check infer.py runs, which ftedge imports for bench's and eval's host note."""
    import ftedge.deploy.templates.runner_openvino as ov_module

    for state, isa, expected in [("vnni", "", None), ("no-vnni", "", "no-vnni"),
                                 ("unknown", "", "unknown"), ("vnni", "AVX2", "no-vnni"),
                                 ("vnni", "avx512_core_vnni", None), ("vnni", "ALL", None),
                                 ("not-x86", "AVX2", None)]:
        monkeypatch.setattr(ov_module, "vnni_state", lambda s=state: s)
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
        assert ov_module.cpu_int8_without_vnni() == expected, (state, isa)

def test_tensorrt_export_off_the_device_writes_onnx_plan_and_command(qat_run, tmp_path):
    logged = []
    res = export_run(qat_run.run_dir, "jetson-orin-nano", precision="int8", out=tmp_path / "trt",
                     log=logged.append)
    m, folder = res.manifest, tmp_path / "trt"
    if m["built"]:
        pytest.skip("TensorRT and a GPU are here: the engine was built (see test_tensorrt_gpu)")
    assert m["parity"]["status"] == "pending" and res.passed is None
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "build_plan.json", "confidence.json", "deploy", "manifest.json", "model.int8.onnx",
        "model_card.md", "parity.json", "reliability.png", "trtexec.sh"]
    # no engine here: T is fitted on the reference's logits, and the manifest says so
    assert m["calibration"]["on_artifact"] is False
    assert "standing in for the artifact" in m["calibration"]["fitted_on"]
    ds_config = (folder / "deploy/deepstream/config_infer_primary_classifier.txt").read_text()
    assert f"T = {m['calibration']['temperature']:.6g}" in ds_config and "cannot apply T" in \
        ds_config
    assert "deploy/deepstream/config_infer_primary_classifier.txt" in m["files"]
    # TensorRT's default: 0..255 in, normalised by the graph; nvinfer passes pixels on
    assert (m["input_format"], m["input_layout"]) == ("float255", "NCHW")
    ds_config = (folder / "deploy/deepstream/config_infer_primary_classifier.txt").read_text()
    assert "net-scale-factor=1\n" in ds_config and "offsets=0;0;0\n" in ds_config
    assert ds_config.count("\nmaintain-aspect-ratio=0") == 1  # a crop run: stretched
    ds = m["parity"]["deepstream_preprocessing"]  # measured on the val split
    assert ds["n"] == 6 and 0 <= ds["top1_deepstream_style"] <= 1
    assert ds["drop_points"] == round(100 * (ds["top1_exact_contract"]
                                             - ds["top1_deepstream_style"]), 2)
    assert not ds["matches_contract"] and ds["emulation"]["cannot"]  # a crop run
    warned = [w for w in logged if "deepstream pipeline preprocesses differently" in w]
    assert len(warned) == 1 and f"{ds['drop_points']:+.2f} points lost" in warned[0]
    assert "ftedge tune --target jetson-orin-nano" in warned[0]
    # the shipped file is the ONNX (hashed); the engine is built and keyed on the device
    assert m["artifact"] == "model.int8.onnx" and m["artifact"] in m["files"]
    assert m["extra"]["engine"] == "model.engine"
    plan = json.loads((folder / "build_plan.json").read_text())
    assert plan["strongly_typed"] and plan["max_batch"] == 32
    assert "--stronglyTyped" in (folder / "trtexec.sh").read_text()
    # the ONNX TensorRT consumes: explicit Q/DQ, signed INT8, zero-point 0, dynamic batch
    model = onnx.load(str(folder / "model.int8.onnx"))
    assert [n.op_type for n in model.graph.node[:3]] == ["Mul", "Sub", "Div"]
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    qs = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert qs and all(inits[q.input[2]].dtype == np.int8 and not inits[q.input[2]].any() for q in qs)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    producer = {o: n for n in model.graph.node for o in n.output}
    assert all(producer[c.input[0]].op_type == "DequantizeLinear" for c in convs)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    with pytest.raises(ExportError, match="built on the device"):
        open_model(folder)


def test_ptq_source_carries_its_calibration_hash(qat_run, tmp_path):
    import ftedge

    ftedge.quantize(qat_run.run_dir, calib_method="minmax", max_drop=100)
    res = export_run(qat_run.run_dir, "onnxruntime-cpu", precision="int8", out=tmp_path / "ptq",
                     int8_source="ptq", log=lambda m: None)
    m = res.manifest
    assert m["source"]["kind"] == "ptq" and m["source"]["onnx"] == "model.ptq.int8.onnx"
    assert len(m["calibration_sha256"]) == 64
    assert "ONNX Runtime" in m["parity"]["reference"] and m["parity"]["top1_agreement"] >= 0.99


def test_force_never_replaces_a_folder_that_is_not_an_artifact(qat_run, tmp_path):
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("precious")
    with pytest.raises(RunError, match="was not written by ftedge"):
        export_run(qat_run.run_dir, "onnxruntime-cpu", precision="fp32", out=keep, force=True,
                   log=lambda m: None)
    assert (keep / "notes.txt").read_text() == "precious"


def test_artifact_files_get_ordinary_permissions(ort_exports):
    import os
    import stat

    umask = os.umask(0)
    os.umask(umask)
    folder = ort_exports["fp32"].folder
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask
    for f in folder.rglob("*"):
        if f.is_dir():
            assert stat.S_IMODE(f.stat().st_mode) == 0o777 & ~umask, f
        elif f.name != "infer.py":  # executable
            assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask, f


def test_missing_artifact_file_is_a_clear_error(ort_exports, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(ort_exports["int8"].folder, copy)
    (copy / "model.int8.onnx").unlink()
    with pytest.raises(ExportError, match="missing"):
        open_model(copy)


def test_manifest_hashes_are_the_real_files(ort_exports):
    import hashlib

    for res in ort_exports.values():
        files = res.manifest["files"]
        # model_card.md is the marker's, not the manifest's: bench rewrites its latency section
        on_disk = sorted(p.relative_to(res.folder).as_posix() for p in res.folder.rglob("*")
                         if p.is_file() and p.name not in ("manifest.json", ".ftedge-folder.json",
                                                           "model_card.md"))
        assert sorted(files) == on_disk and res.manifest["artifact"] in files
        for name, digest in files.items():
            assert digest == hashlib.sha256((res.folder / name).read_bytes()).hexdigest(), name


_ORT_PROBE = """
import sys, numpy as np, onnxruntime as ort
x = np.load(sys.argv[1])
for path in sys.argv[2:]:
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    np.save(path + ".cpu.npy", s.run(None, {s.get_inputs()[0].name: x})[0])
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qemu-x86_64") is None or not sys.platform.startswith("linux"),
                    reason="needs QEMU user mode to emulate an x86 CPU without VNNI "
                           "(apt-get install qemu-user)")
def test_ort_int8_artifact_is_exact_on_a_cpu_without_vnni(ort_exports, qat_run, tmp_path):
    """ONNX Runtime picks its int8 kernels from CPUID; under QEMU emulating a Haswell (AVX2, no
    VNNI: u8 x s8 pairs summed in 16 bits) the shipped artifact gives this machine's logits bit
    for bit, while the same graph with full-range weights saturates (so the emulation is
    active). References are exact integer paths on any host (ftedge.runtime.onnxruntime.runner)."""
    from ftedge.graph import edit
    from ftedge.graph.layout import fold_pads_into_convs, unsigned_activations
    from ftedge.runtime.onnxruntime.runner import onnx_logits
    from tests.conftest import full_range_copy, run_images

    x = np.concatenate(run_images(qat_run))
    np.save(tmp_path / "x.npy", x)
    wide_shared = tmp_path / "wide_shared.onnx"
    full_range_copy(qat_run.run_dir / "model.int8.onnx", wide_shared)
    wide = onnx.load(str(wide_shared))
    fold_pads_into_convs(wide)
    unsigned_activations(wide)  # u8 activations, the same values: u8 x s8 kernels
    edit.save(edit.clean(wide), tmp_path / "wide.onnx")
    probe = [tmp_path / "shipped.onnx", tmp_path / "wide.onnx"]
    probe[0].write_bytes((ort_exports["int8"].folder / "model.int8.onnx").read_bytes())
    subprocess.run(["qemu-x86_64", "-cpu", "Haswell-noTSX", sys.executable, "-c", _ORT_PROBE,
                    str(tmp_path / "x.npy"), *map(str, probe)], check=True, timeout=600)
    assert np.array_equal(np.load(str(probe[0]) + ".cpu.npy"), onnx_logits(probe[0], x))
    wide_haswell, wide_exact = np.load(str(probe[1]) + ".cpu.npy"), onnx_logits(wide_shared, x)
    assert np.abs(wide_haswell - wide_exact).max() > 0.3 * np.abs(wide_exact).max()


def _gated_copy(qat_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(qat_run.run_dir, run, ignore=shutil.ignore_patterns("exports", "bench"))
    return run


def test_int8_export_starts_only_from_a_graph_whose_own_gate_passed(qat_run, tmp_path):
    """The QAT graph's gate.json names its sha256; a failed gate, a missing or damaged one, or
    one written for another graph (a step interrupted between the graph and its gate) stops an
    INT8 export with how to fix it; --allow-failed-gate exports a failed one and says so."""
    import json

    from ftedge.formats.run import RunFolder

    run = _gated_copy(qat_run, tmp_path)
    gate = json.loads((run / "gate.json").read_text())
    assert gate["passed"] and gate["graph"] == "model.int8.onnx" and len(gate["graph_sha256"]) == 64
    res = export_run(run, "onnxruntime-cpu", precision="int8", out=tmp_path / "ok",
                     int8_source="qat",
                     log=lambda m: None)
    assert res.manifest["source"]["gate"] == {
        "file": "gate.json", "passed": True, "drop_points": gate["drop_points"],
        "max_drop_points": gate["max_drop_points"], "graph_sha256_checked": True,
        # the drop's interval and what it was measured on, for the model card
        **{k: gate[k] for k in ("drop_ci95_points", "n", "fp32_top1", "int8_top1") if k in gate}}

    def export(**kw):
        return export_run(run, "onnxruntime-cpu", precision="int8", out=tmp_path / "x", force=True,
                          int8_source="qat", log=said.append, **kw)

    said = []
    (run / "gate.json").write_text(json.dumps({**gate, "passed": False, "drop_points": 3.5}))
    with pytest.raises(ExportError, match=r"failed its accuracy gate \(drop \+3.50") as e:
        export()
    assert "--allow-failed-gate" in e.value.hint and "ftedge tune --qat" in e.value.hint
    res = export(allow_failed_gate=True)
    assert res.manifest["source"]["gate"]["passed"] is False
    assert any("failed its accuracy gate; exported anyway" in m for m in said)

    for broken, want in [(None, "has no accuracy gate"), ("{bad", "broken JSON"),
                         ("[]", "not an accuracy gate"),
                         (json.dumps({**gate, "graph_sha256": "0" * 64}), "gated another graph")]:
        if broken is None:
            (run / "gate.json").unlink()
        else:
            (run / "gate.json").write_text(broken)
        with pytest.raises(RunError, match=want):
            export(allow_failed_gate=True)  # not even with it: nothing says how the graph did
    old = {k: v for k, v in gate.items() if k not in ("graph", "graph_sha256")}
    (run / "gate.json").write_text(json.dumps(old))  # a run from before gates named the graph
    said.clear()
    assert export().manifest["source"]["gate"]["graph_sha256_checked"] is False
    assert any("cannot be tied" in m for m in said)
    assert RunFolder(run).int8_gate("qat")["graph_sha256"] is None


def test_auto_int8_source_passes_over_a_qat_graph_that_failed_to_a_ptq_graph_that_passed(
        qat_run, tmp_path):
    import json

    from ftedge.stages.quantize import quantize

    run = _gated_copy(qat_run, tmp_path)
    assert quantize(run, max_drop=100.0)["passed"]  # (another test may have left one: made anew)
    gate = json.loads((run / "gate.json").read_text())
    (run / "gate.json").write_text(json.dumps({**gate, "passed": False}))
    said = []
    res = export_run(run, "onnxruntime-cpu", precision="int8", out=tmp_path / "a", log=said.append)
    assert res.manifest["source"]["kind"] == "ptq" and res.manifest["source"]["gate"]["passed"]
    assert any(m.startswith("INT8 source: model.ptq.int8.onnx, because model.int8.onnx failed")
               for m in said)
    (run / "model.ptq.int8.onnx").write_bytes((run / "model.int8.onnx").read_bytes())
    with pytest.raises(ExportError, match="model.int8.onnx failed"):  # PTQ gate is stale now
        export_run(run, "onnxruntime-cpu", precision="int8", out=tmp_path / "b", log=said.append)


@pytest.fixture(scope="module")
def float_int8_artifacts(qat_run, tmp_path_factory) -> dict:
    """The float-input INT8 artifact of the QAT run per target, exported once for this module
    (the uint8-input tests compare against it; it is only read)."""
    made: dict = {}

    def artifact(target: str):
        if target not in made:
            made[target] = export_run(qat_run.run_dir, target, precision="int8",
                                      out=tmp_path_factory.mktemp("float") / target,
                                      log=lambda m: None)
        return made[target]
    return artifact


@pytest.mark.parametrize("target", ["onnxruntime-cpu", "openvino-cpu"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_uint8_input_artifacts_answer_as_the_float_ones(qat_run, float_int8_artifacts, tmp_path,
                                                        target, layout, monkeypatch):
    """--input-format uint8: the graph normalises; parity, eval and infer.py feed it pixels;
    in ONNX Runtime the input quantizer absorbs the normalisation; predict prepares pixels."""
    plain = float_int8_artifacts(target)
    res = export_run(qat_run.run_dir, target, precision="int8", out=tmp_path / "u8",
                     log=lambda m: None,
                     input_format="uint8", input_layout=layout)
    m = res.manifest
    assert (m["input_format"], m["input_layout"]) == ("uint8", layout)
    assert m["input_shape"][1:] == ([32, 32, 3] if layout == "NHWC" else [3, 32, 32])
    assert res.passed and m["parity"]["top1_agreement"] == plain.manifest["parity"][
        "top1_agreement"]
    folded = m["extra"]["graph"].get("normalization_in_quantizer")
    assert folded is (True if target == "onnxruntime-cpu" else None)
    a, b = evaluate(plain.folder), evaluate(tmp_path / "u8")
    assert a["top1"] == b["top1"]
    images = sorted((qat_run.run_dir.parent / "colours").rglob("*.png"))[:5]
    image = images[0]
    inputs = images + [np.asarray(Image.open(images[1]).convert("RGB"))]
    want_all = predict(plain.folder, inputs, topk=2)
    want = want_all[0]["top"][0]["class"]

    def no_float_round_trip(self, batch):
        raise AssertionError("predict prepared floats for a pixel-input artifact")

    with monkeypatch.context() as mp:  # predict prepares the pixels itself, as the kit does
        mp.setattr(PixelInputRunner, "native", no_float_round_trip)
        got = predict(tmp_path / "u8", inputs, topk=2)
    assert [r["top"][0]["class"] for r in got] == [r["top"][0]["class"] for r in want_all]
    np.testing.assert_allclose([r["top"][0]["prob"] for r in got],
                               [r["top"][0]["prob"] for r in want_all], atol=0.02)
    out = subprocess.run([sys.executable, str(tmp_path / "u8" / "deploy" / "infer.py"),
                          str(image), "--json"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)[0]["top"][0]["class"] == want
    triton = next((tmp_path / "u8" / "deploy" / "triton").rglob("config.pbtxt")).read_text()
    assert "TYPE_UINT8" in triton and f"FORMAT_{layout}" in triton
