"""TensorRT on a real GPU: build the engine, run it, refuse a mismatched one. Skips without."""

import json

import pytest

trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed (NVIDIA GPU + JetPack "
                                             "or NVIDIA's pip index needed)")
torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.tensorrt, pytest.mark.gpu]


@pytest.fixture(autouse=True)
def _need_gpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible")


def test_engine_builds_runs_and_matches_qat(qat_run, tmp_path):
    from ftedge.stages.export.exporter import export_run

    res = export_run(qat_run.run_dir, "tensorrt-x86", precision="int8", out=tmp_path / "e",
                     log=print)
    assert res.manifest["built"] and res.passed, res.manifest["parity"]
    assert res.manifest["parity"]["top1_agreement_within_noise"] >= 0.99


def test_mismatched_engine_is_refused_with_the_rebuild_command(qat_run, tmp_path):
    from ftedge.runtime.base import ExportError
    from ftedge.stages.export.exporter import export_run
    from ftedge.runtime.pytorch.runner import load_run

    export_run(qat_run.run_dir, "tensorrt-x86", precision="fp16", out=tmp_path / "e", log=print)
    info = json.loads((tmp_path / "e" / "engine.json").read_text())
    info["key"] = "0" * 16
    (tmp_path / "e" / "engine.json").write_text(json.dumps(info))
    with pytest.raises(ExportError, match="--force"):
        load_run(tmp_path / "e")
