"""A hostile but realistic user: wrong layouts, damaged and edited files, odd values.

Each case asserts the exit code, the message (what is wrong and how to fix it), and that the
user's own files are still there, unchanged.
"""

from __future__ import annotations

import errno
import json
import os
import shutil

import pytest
import torch

from tests.conftest import tiny_options, write_class_folders
from tests.test_cli import run_cli

TUNE = ["--model", "efficientnet_lite0", "--img-size", 32, "--epochs", 2, "--batch-size", 8,
        "--device", "cpu", "--workers", 0, "--no-label-check", "--lr", 0.005]  # --lr last: [:-2]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny finished run, one ONNX Runtime FP32 artifact of it, and a bench report."""
    import ftedge
    from ftedge.stages.bench.bench import BenchOptions, bench
    from ftedge.stages.bench.report import write_report

    root = tmp_path_factory.mktemp("hostile")
    data = write_class_folders(root / "colours", per_class=12)
    run = ftedge.tune(data=str(data), **dict(tiny_options(root), epochs=2)).run_dir
    art = ftedge.export_run(run, "onnxruntime-cpu", precision="fp32", log=lambda m: None).folder
    report = bench([art], opts=BenchOptions(batches=(1,), runs=3, warmup=1, e2e_images=2,
                                             camera_images=0))
    write_report(report, root / "report")
    return {"root": root, "data": data, "run": run, "art": art, "report": root / "report"}


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _edit_manifest(folder, change):
    m = json.loads((folder / "manifest.json").read_text())
    change(m)
    (folder / "manifest.json").write_text(json.dumps(m))


def _user_folder(path, name="notes.txt"):
    path.mkdir(parents=True, exist_ok=True)
    (path / name).write_text("precious")
    return path / name


# -- nothing of the user's is lost -------------------------------------------------------

def test_demo_data_never_replaces_the_current_folder(monkeypatch, capsys, tmp_path):
    keep = _user_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "demo-data", ".", "--overwrite")
    assert code == 2 and "current folder" in err and keep.read_text() == "precious"


def test_demo_data_overwrite_keeps_a_folder_with_user_files(monkeypatch, capsys, tmp_path):
    keep = _user_folder(tmp_path / "d")
    code, _, err = run_cli(monkeypatch, capsys, "demo-data", tmp_path / "d", "--overwrite")
    assert code == 2 and "not written by ftedge" in err and keep.read_text() == "precious"


@pytest.mark.parametrize("case", ["user-folder-with-manifest", "cwd", "the-run", "under-a-file"])
def test_export_force_replaces_only_its_own_artifacts(world, monkeypatch, capsys, tmp_path,
                                                      case):
    run = world["run"]
    before = sorted(p.name for p in run.iterdir())
    if case == "user-folder-with-manifest":
        out = tmp_path / "mine"
        keep = _user_folder(out)
        (out / "manifest.json").write_text("{}")
        want = "not written by ftedge"
    elif case == "cwd":
        keep = _user_folder(tmp_path)
        monkeypatch.chdir(tmp_path)
        out, want = ".", "current folder"
    elif case == "the-run":
        keep, out, want = run / "best.pt", run, "own input"
    else:
        keep = tmp_path / "file"
        keep.write_text("precious")
        out, want = keep / "sub", "is a file"
    data = keep.read_bytes()
    code, _, err = run_cli(monkeypatch, capsys, "export", run, "--target", "onnxruntime-cpu",
                           "--precision", "fp32", "--out", out, "--force")
    assert code == 2 and want in err.replace("\n", " "), err
    assert keep.read_bytes() == data and sorted(p.name for p in run.iterdir()) == before


@pytest.mark.parametrize("case", ["file-in-a-subfolder", "new-subfolder", "edited-file",
                                  "older-marker"])
def test_export_force_keeps_what_the_user_put_or_edited_anywhere_in_an_artifact(
        world, monkeypatch, capsys, tmp_path, case):
    """--force replaces an artifact ftedge wrote only while every file in it, subfolders
    included, is one ftedge wrote, unchanged."""
    art = _copy(world["art"], tmp_path / "art")
    if case == "file-in-a-subfolder":
        keep, want = _user_folder(art / "deploy", "mine.py"), "did not write (deploy/mine.py)"
    elif case == "new-subfolder":
        keep = _user_folder(art / "deploy" / "triton" / "extra", "keep.txt")
        want = "deploy/triton/extra/keep.txt"
    elif case == "edited-file":
        keep = art / "deploy" / "infer.py"
        keep.write_text(keep.read_text() + "\n# my change\n")
        want = "changed since ftedge wrote them (deploy/infer.py)"
    else:  # a marker from before files were recorded: --force cannot tell, so it refuses
        keep = art / "deploy" / "infer.py"
        marker = json.loads((art / ".ftedge-folder.json").read_text())
        del marker["files"]
        (art / ".ftedge-folder.json").write_text(json.dumps(marker))
        want = "did not record the files in its subfolders"
    data = keep.read_bytes()
    code, _, err = run_cli(monkeypatch, capsys, "export", world["run"], "--target",
                           "onnxruntime-cpu", "--precision", "fp32", "--out", art, "--force")
    assert code == 2 and want in err.replace("\n", " "), err
    assert keep.read_bytes() == data
    if case == "edited-file":  # undone, the folder is ftedge's again and --force replaces it
        keep.write_text(data.decode().replace("\n# my change\n", ""))
        code, _, err = run_cli(monkeypatch, capsys, "export", world["run"], "--target",
                               "onnxruntime-cpu", "--precision", "fp32", "--out", art, "--force")
        assert code == 0, err


def test_bench_and_report_never_overwrite_a_report_without_force(world, monkeypatch, capsys,
                                                                 tmp_path):
    out = _copy(world["report"], tmp_path / "rep")
    md = (out / "report.md").read_text()
    code, _, err = run_cli(monkeypatch, capsys, "bench", world["art"], "--out", out)
    assert code == 2 and "already exists" in err and (out / "report.md").read_text() == md
    code, _, err = run_cli(monkeypatch, capsys, "report", world["report"], "--out", out)
    assert code == 2 and "already exists" in err and (out / "report.md").read_text() == md
    mine = _user_folder(tmp_path / "mine", "report.md")
    code, _, err = run_cli(monkeypatch, capsys, "report", world["report"], "--out",
                           tmp_path / "mine", "--force")
    assert code == 2 and "not written by ftedge" in err and mine.read_text() == "precious"
    code, _, err = run_cli(monkeypatch, capsys, "report", world["report"], "--out",
                           tmp_path / "merged")
    assert code == 0 and (tmp_path / "merged" / "report.md").is_file()


def test_disk_full_names_the_path_and_leaves_nothing(monkeypatch, tmp_path):
    from ftedge.errors import FtedgeError
    from ftedge.io import atomic_write_json

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(FtedgeError, match="no space left.*x.json"):
        atomic_write_json(tmp_path / "x.json", {"a": 1})
    assert list(tmp_path.iterdir()) == []


# -- the manifest is trusted only as exported -------------------------------------------

MANIFEST_EDITS = {
    "artifact-outside": (lambda m: m.update(artifact="../../best.pt"), "not one of the hashed"),
    "file-entry-removed": (lambda m: m["files"].pop("parity.json"), "files differ"),
    "classes-reordered": (lambda m: m.update(classes=m["classes"][::-1]), "classes differ"),
    "contract-edited": (lambda m: m["preprocessing"].update(mean=[0.0, 0.0, 0.0]),
                        "preprocessing differ"),
    "profile-edited": (lambda m: m["profile"].update(max_batch=1), "profile differ"),
    "keys-missing": (lambda m: [m.pop(k) for k in ("classes", "runtime")], "missing field"),
    "absolute-file-name": (lambda m: m["files"].update({"/etc/passwd": "0" * 64}),
                           "not a plain path"),
    "digest-removed": (lambda m: m.pop("digest"), "no digest"),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_EDITS))
def test_an_edited_manifest_is_refused(world, monkeypatch, capsys, tmp_path, case):
    change, want = MANIFEST_EDITS[case]
    art = _copy(world["art"], tmp_path / "art")
    _edit_manifest(art, change)
    for cmd in (["eval", art], ["predict", art, world["data"] / "red" / "000.png"]):
        code, _, err = run_cli(monkeypatch, capsys, *cmd)
        assert code == 2 and want in err and "ftedge export" in err, err


def test_a_damaged_manifest_or_model_is_refused(world, monkeypatch, capsys, tmp_path):
    art = _copy(world["art"], tmp_path / "art")
    (art / "manifest.json").write_bytes(b"\xff\x00{")
    code, _, err = run_cli(monkeypatch, capsys, "eval", art)
    assert code == 2 and "broken JSON" in err
    art = _copy(world["art"], tmp_path / "art2")
    model = next(art.glob("model.*.onnx"))
    model.write_bytes(model.read_bytes()[:-10])
    code, _, err = run_cli(monkeypatch, capsys, "eval", art)
    assert code == 2 and "changed since export" in err


def test_bench_reports_a_damaged_artifact_and_runs_the_others(world, tmp_path):
    from ftedge.stages.bench.bench import BenchOptions, bench

    art = _copy(world["art"], tmp_path / "art")
    _edit_manifest(art, lambda m: m.update(classes=m["classes"][::-1]))
    rep = bench([art, world["art"]], opts=BenchOptions(batches=(1,), runs=2, warmup=1,
                                                        e2e_images=2, camera_images=0))
    bad, good = rep["artifacts"]
    assert bad["status"] == "error" and "classes differ" in bad["error"]
    assert good["status"] == "ok"


def test_report_of_the_wrong_schema_is_refused(monkeypatch, capsys, tmp_path, world):
    bad = _copy(world["report"], tmp_path / "bad")
    rep = json.loads((bad / "report.json").read_text())
    rep["artifacts"][0]["latency"] = [{"batch": 1}]
    (bad / "report.json").write_text(json.dumps(rep))
    code, _, err = run_cli(monkeypatch, capsys, "report", bad, "--out", tmp_path / "o")
    assert code == 2 and "latency row is damaged" in err
    (bad / "report.json").write_text(json.dumps({"schema": "something-else"}))
    code, _, err = run_cli(monkeypatch, capsys, "report", bad, "--out", tmp_path / "o")
    assert code == 2 and "not a usable ftedge bench report" in err
    assert not (tmp_path / "o").exists()


# -- runs and checkpoints ----------------------------------------------------------------

def test_damaged_or_foreign_checkpoints(world, monkeypatch, capsys, tmp_path):
    run = _copy(world["run"], tmp_path / "run")
    (run / "best.pt").write_bytes(b"")
    code, _, err = run_cli(monkeypatch, capsys, "eval", run)
    assert code == 2 and "empty (0 bytes)" in err
    # another run's best.pt: a 2-class model (green, red) beside this run's 3-class split;
    # its weights are never read before the classes are compared, so none are trained
    from ftedge.formats.checkpoint import atomic_torch_save
    from ftedge.models import build_model

    foreign = torch.load(world["run"] / "best.pt", weights_only=True)
    foreign.update(classes=["green", "red"], num_classes=2,
                   model_state=build_model("efficientnet_lite0", 2,
                                               weights="none").model.state_dict())
    atomic_torch_save(foreign, run / "best.pt")
    code, _, err = run_cli(monkeypatch, capsys, "eval", run)
    assert code == 2 and "other classes than the model" in err
    empty = tmp_path / "w.pt"
    empty.write_bytes(b"")
    code, _, err = run_cli(monkeypatch, capsys, "tune", "--data", world["data"], "--out",
                           tmp_path / "r2", "--weights", empty, *TUNE)
    assert code == 2 and "empty (0 bytes)" in err and not (tmp_path / "r2" / "best.pt").exists()


def test_nan_weights_and_divergence_stop_with_a_clear_error(world, monkeypatch, capsys, tmp_path):
    from ftedge.models import build_model

    model = build_model("efficientnet_lite0", 3, weights="none").model
    state = model.state_dict()
    state[next(k for k in state if k.endswith("weight"))].fill_(float("nan"))
    torch.save(state, tmp_path / "nan.pt")
    code, _, err = run_cli(monkeypatch, capsys, "tune", "--data", world["data"], "--out",
                           tmp_path / "r1", "--weights", tmp_path / "nan.pt", *TUNE)
    assert code == 2 and "NaN or infinite" in err
    (tmp_path / "huge-lr.yaml").write_text("train:\n  lr: 1.0e+30\n")  # --lr stops at 100
    code, _, err = run_cli(monkeypatch, capsys, "tune", "--data", world["data"], "--out",
                           tmp_path / "r2", *TUNE[:-2], "--config", tmp_path / "huge-lr.yaml")
    assert code == 2 and "diverged" in err and "lower --lr" in err.replace("\n", " ")
    assert not (tmp_path / "r2" / "last.pt").exists()


@pytest.mark.parametrize("flag, value, want", [
    ("--lr", "inf", "finite number"), ("--lr", "nan", "finite number"),
    ("--patience", -1, "patience"), ("--workers", -1, "workers"),
])
def test_out_of_range_flags(world, monkeypatch, capsys, tmp_path, flag, value, want):
    code, _, err = run_cli(monkeypatch, capsys, "tune", "--data", world["data"], "--out",
                           tmp_path / "r", *TUNE, flag, value)
    assert code == 2 and want in err and not (tmp_path / "r").exists()


def test_a_tune_that_fails_on_its_data_leaves_no_folder_it_made(monkeypatch, capsys, tmp_path):
    one_class = tmp_path / "d"
    (one_class / "a").mkdir(parents=True)
    out = tmp_path / "new"
    code, _, err = run_cli(monkeypatch, capsys, "tune", "--data", one_class, "--out", out, *TUNE)
    assert code == 2 and "at least 2" in err and not out.exists()
    mine = tmp_path / "mine"  # an empty folder the user made for the run is theirs
    mine.mkdir()
    code, _, err = run_cli(monkeypatch, capsys, "tune", "--data", one_class, "--out", mine, *TUNE)
    assert code == 2 and mine.is_dir()


@pytest.mark.parametrize("yaml_text, want", [
    ("model: {dropout: 1.5}", "dropout"), ("data: {background: [300, 0, 0]}", "background"),
    ("train: {patience: -1}", "patience"), ("train: {lr: .inf}", "finite number"),
])
def test_out_of_range_config_values(world, monkeypatch, capsys, tmp_path, yaml_text, want):
    (tmp_path / "c.yaml").write_text(yaml_text)
    code, _, err = run_cli(monkeypatch, capsys, "tune", "--config", tmp_path / "c.yaml",
                           "--data", world["data"], "--out", tmp_path / "r")
    assert code == 2 and want in err


def test_topk_must_be_positive_and_unreadable_images_fail(world, monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, "predict", world["run"],
                           world["data"] / "red" / "000.png", "--topk", 0)
    assert code == 2 and "topk" in err
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    code, out, err = run_cli(monkeypatch, capsys, "predict", world["run"], junk,
                             tmp_path / "missing.jpg")
    assert code == 1 and "no image could be read" in err and "not an image" in out


def test_predict_names_folders_and_missing_files(world, monkeypatch, capsys, tmp_path):
    code, out, err = run_cli(monkeypatch, capsys, "predict", world["art"], tmp_path,
                             tmp_path / "missing.jpg")
    assert code == 1 and "no image could be read" in err
    assert f"{tmp_path}: error: not a file" in out and "missing.jpg: error: no such file" in out
    assert "Errno" not in out and "corrupt" not in out


def test_eval_takes_data_with_some_of_the_model_classes(world, monkeypatch, capsys, tmp_path):
    """Evaluating on one class of three (a subset) is a normal thing to do; training on one
    class is not."""
    one = tmp_path / "one"
    shutil.copytree(world["data"] / "red", one / "red")
    code, out, err = run_cli(monkeypatch, capsys, "eval", world["art"], "--data", one, "--json")
    rep = json.loads(out)
    assert code == 0 and rep["n"] == 12 and rep["per_class"]["red"]["support"] == 12, err
    code, _, err = run_cli(monkeypatch, capsys, "eval", world["art"], "--data", tmp_path / "x")
    assert code == 2 and "not found" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(monkeypatch, capsys, "eval", world["art"], "--data", tmp_path / "empty")
    assert code == 2 and "0 class folder(s)" in err
    code, _, err = run_cli(monkeypatch, capsys, "tune", "--data", one, "--out", tmp_path / "r",
                           *map(str, TUNE))
    assert code == 2 and "a classifier needs at least 2" in err


def test_an_artifact_without_its_manifest_is_named_as_such(world, monkeypatch, capsys,
                                                           tmp_path):
    art = _copy(world["art"], tmp_path / "art")
    (art / "manifest.json").unlink()
    for args in (["eval", art], ["predict", art, world["data"] / "red" / "000.png"]):
        code, _, err = run_cli(monkeypatch, capsys, *args)
        err = " ".join(err.split())
        assert code == 2 and "looks like an artifact folder" in err, err
        assert "no manifest.json" in err and "then: ftedge export" in err
        assert "best.pt" not in err


def test_sensitivity_names_the_missing_graph(world, monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "quantize", world["run"], "--sensitivity",
                           "--graph", "ptq")
    err = " ".join(err.split())
    assert code == 2 and "has no model.ptq.int8.onnx to analyse" in err
    assert f"ftedge quantize {world['run']}" in err


def test_a_run_killed_before_its_first_checkpoint_resumes_or_is_reused(world, monkeypatch,
                                                                       capsys, tmp_path):
    import ftedge
    from ftedge.formats.run import HEADER

    run = _copy(world["run"], tmp_path / "killed")
    for p in run.iterdir():
        if p.name not in HEADER:
            p.unlink() if p.is_file() else shutil.rmtree(p)
    code, _, err = run_cli(monkeypatch, capsys, "tune", "--resume", run)
    assert code == 0 and "from the beginning" in err and (run / "best.pt").is_file()
    for p in run.iterdir():
        if p.name not in HEADER:
            p.unlink() if p.is_file() else shutil.rmtree(p)
    res = ftedge.tune(data=str(world["data"]), **dict(tiny_options(tmp_path), out=str(run),
                                                      epochs=1))
    assert (res.run_dir / "best.pt").is_file()


def test_eval_from_another_folder_finds_the_images(world, monkeypatch, tmp_path):
    import ftedge

    monkeypatch.chdir(tmp_path)
    assert ftedge.evaluate(world["run"])["n"] == 6
    record = json.loads((world["run"] / "split.json").read_text())
    assert os.path.isabs(record["root"]) and not os.path.isabs(record["val"][0][0])


# -- datasets ----------------------------------------------------------------------------

def test_train_test_layout_is_read_as_splits(world, monkeypatch, capsys, tmp_path):
    """train/ + test/ are two splits, never two classes. The rule lives in tune's data setup
    (prepare_data), checked here without training: its split record, put in a copy of the
    world's run (same classes), is what eval --split test reads."""
    import ftedge
    from ftedge.config import build_tune_config, nest_overrides
    from ftedge.io import atomic_write_json
    from ftedge.training.data_setup import prepare_data

    data = tmp_path / "d"
    write_class_folders(data / "train", per_class=10)
    write_class_folders(data / "test", per_class=3, seed=1)
    run = _copy(world["run"], tmp_path / "run")
    cfg = build_tune_config(None, nest_overrides({"data": str(data)}))
    prepared = prepare_data(cfg, 32, None, run=run)
    assert prepared.classes == ["blue", "green", "red"]  # never "test" and "train"
    assert len(prepared.test) == 9 and len(prepared.train) + len(prepared.val) == 30
    record = prepared.split_record
    assert len(record["test"]) == 9 and all(rel.startswith("test/") for rel, _ in record["test"])
    assert not any(rel.startswith("test/") for rel, _ in record["train"] + record["val"])
    atomic_write_json(run / "split.json", record)
    rep = ftedge.evaluate(run, split="test")
    assert rep["n"] == 9
    code, out, _ = run_cli(monkeypatch, capsys, "eval", run, "--split", "test", "--json")
    assert code == 0 and json.loads(out)["n"] == 9


@pytest.mark.parametrize("layout, want", [
    ({"train": 1, "validation": 1}, None),
    ({"train": 1, "red": 0}, "mixes split folders"),
    ({"test": 1, "val": 1}, "no train/ folder"),
    ({"train": 1, "val": 1, "valid": 1}, "more than one validation folder"),
])
def test_split_folder_layouts(tmp_path, layout, want):
    from ftedge.data.audit import audit_dataset
    from ftedge.errors import DatasetError

    for name, split in layout.items():
        if split:
            write_class_folders(tmp_path / name, per_class=3)
        else:
            write_class_folders(tmp_path, per_class=3, classes=(name,))
    if want is None:
        audit = audit_dataset(tmp_path)
        assert audit.classes == ["blue", "green", "red"] and len(audit.val) == 9
    else:
        with pytest.raises(DatasetError, match=want):
            audit_dataset(tmp_path)


def test_out_inside_data_is_refused(world, monkeypatch, capsys, tmp_path):
    data = _copy(world["data"], tmp_path / "data")
    code, _, err = run_cli(monkeypatch, capsys, "tune", "--data", data, "--out",
                           data / "runs" / "x", *TUNE)
    assert code == 2 and "inside --data" in err and not (data / "runs").exists()


def test_class_names_with_markup_and_control_characters_print_literally(monkeypatch, capsys,
                                                                        tmp_path):
    from PIL import Image

    for name in ("[bold]x", "a\nb", "plain"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / name / "0.png")
    code, out, _ = run_cli(monkeypatch, capsys, "data", "check", tmp_path)
    assert code == 0 and "[bold]x" in out and "a\\nb" in out and "a\nb" not in out


# -- issue 23 item 7: the classes of the second sweep ------------------------------------

def _ro_below(monkeypatch, root):
    """Make `root` (and everything below) a read-only file system for this process: mkdir and
    creating files fail with EROFS, as on a read-only mount (root ignores chmod)."""
    real_mkdir, real_open = os.mkdir, os.open
    inside = lambda p: os.path.abspath(p).startswith(str(root))  # noqa: E731

    def mkdir(path, *a, **k):
        if inside(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_mkdir(path, *a, **k)

    def open_(path, flags, *a, **k):
        if flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR) and inside(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)


@pytest.mark.parametrize("args", [
    ["tune", "--data", "{data}", *TUNE],  # no --out: runs/<model>-<time> here
    ["demo-data", "digits"],
    ["report", "{report}"],
    ["export", "{run}", "--target", "onnxruntime-cpu", "--precision", "fp32", "--out", "a"],
])
def test_a_read_only_current_folder_is_a_clear_error(world, monkeypatch, capsys, tmp_path,
                                                       args):
    ro = tmp_path / "ro"
    ro.mkdir()
    monkeypatch.chdir(ro)
    _ro_below(monkeypatch, ro)
    args = [str(a).format(data=world["data"], report=world["report"], run=world["run"])
            for a in args]
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2 and "read-only" in err and "How to fix" in err, err
    assert "Traceback" not in err + out and os.listdir(ro) == []


@pytest.mark.parametrize("args", [
    ["demo-data", "{long}"],
    ["tune", "--data", "{data}", *TUNE, "--out", "{long}"],
    ["export", "{run}", "--target", "onnxruntime-cpu", "--precision", "fp32", "--out", "{long}"],
    ["report", "{report}", "--out", "{long}"],
    ["eval", "{run}", "--data", "{long}"],
])
def test_a_name_too_long_for_the_file_system(world, monkeypatch, capsys, tmp_path, args):
    monkeypatch.chdir(tmp_path)
    args = [str(a).format(long="x" * 302, data=world["data"], report=world["report"],
                          run=world["run"]) for a in args]
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2 and ("too long" in err or "not found" in err), err
    assert "Traceback" not in err + out


@pytest.mark.parametrize("flag", ["--config", "--target", "--calib"])
@pytest.mark.parametrize("kind", ["binary", "checkpoint", "alias-bomb"])
def test_binary_files_checkpoints_and_alias_bombs_as_yaml(world, monkeypatch, capsys, tmp_path,
                                                          flag, kind):
    import time

    bad = tmp_path / "bad.yaml"
    if kind == "binary":
        bad.write_bytes(bytes(range(256)) * 8)
    elif kind == "checkpoint":
        shutil.copy(world["run"] / "best.pt", bad)
    else:
        bad.write_text("".join(f"l{i}: &l{i} [" + ",".join([f"*l{i-1}" if i else '"x"'] * 9)
                               + "]\n" for i in range(9)) + "name: *l8\n")
    args = {"--config": ["tune", "--config", bad, "--data", world["data"]],
            "--target": ["export", world["run"], "--target", bad],
            "--calib": ["quantize", _copy(world["run"], tmp_path / "r"), "--calib", bad]}[flag]
    t0 = time.perf_counter()
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2 and str(bad) in err and "Traceback" not in err + out, err
    want = {"alias-bomb": ["aliases"], "binary": ["not a text file"],
            "checkpoint": ["not a text file", "larger than 1 MiB"]}[kind]
    assert any(w in err for w in want), err
    assert time.perf_counter() - t0 < 60


def test_tune_never_overwrites_a_users_config_in_out(world, monkeypatch, capsys, tmp_path):
    exp = tmp_path / "myexp"
    exp.mkdir()
    mine = "# my experiment: keep this comment\ntrain:\n  epochs: 1\n"
    (exp / "config.yaml").write_text(mine)
    code, _, err = run_cli(monkeypatch, capsys, "tune", "--config", exp / "config.yaml",
                           "--out", exp, "--data", world["data"], *TUNE)
    assert code == 2 and "ftedge never replaces them" in err and "--resume" not in err
    assert (exp / "config.yaml").read_text() == mine and os.listdir(exp) == ["config.yaml"]


def test_a_second_tune_into_the_same_folder_is_refused(world, monkeypatch, capsys, tmp_path):
    from tests.test_io import _holder

    out = tmp_path / "rT"
    p = _holder(out)
    try:
        code, _, err = run_cli(monkeypatch, capsys, "tune", "--data", world["data"], *TUNE,
                               "--out", out)
    finally:
        p.kill()
        p.wait()
    assert code == 2 and f"pid {p.pid}" in err and "being written" in err
    assert not out.exists() or os.listdir(out) == []


def test_default_run_folders_never_collide(world, monkeypatch, tmp_path):
    """Two runs started in the same second: the second gets its own numbered folder (the
    first run is stood for by its folder, made as tune makes it; io.new_folder's own rule is
    tests/test_io.py's)."""
    import ftedge
    from ftedge.io import new_folder
    from ftedge.stages.tune import trainer

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(trainer, "default_run_dir", lambda cfg: trainer.Path("runs/same"))
    opts = dict(tiny_options(tmp_path), epochs=1, head_epochs=0)
    del opts["out"]
    first = new_folder(trainer.Path("runs/same"))
    (first / "best.pt").write_bytes(b"the first run's")
    b = ftedge.tune(data=str(world["data"]), **opts).run_dir
    assert (str(first), str(b)) == ("runs/same", "runs/same-2")
    assert (first / "best.pt").read_bytes() == b"the first run's" and (b / "best.pt").is_file()


def test_export_remakes_a_stale_fp32_graph(world, monkeypatch, capsys, tmp_path):
    """A resumed run that improved best.pt: model.fp32.onnx is made again from it."""
    from ftedge.graph.metadata import read_metadata
    from ftedge.io import sha256_file

    run = _copy(world["run"], tmp_path / "run")
    assert (run / "model.fp32.onnx").is_file()
    ckpt = torch.load(run / "best.pt", weights_only=True)
    for k, v in ckpt["model_state"].items():
        if v.is_floating_point() and "classifier" in k:
            v.mul_(1.5)
    torch.save(ckpt, run / "best.pt")
    code, out, err = run_cli(monkeypatch, capsys, "export", run, "--target", "onnxruntime-cpu",
                             "--precision", "fp32", "--out", tmp_path / "a")
    assert code == 0 and "out of date" in err and "parity [green]" not in err, err
    assert read_metadata(run / "model.fp32.onnx")["ftedge.checkpoint_sha256"] == \
        sha256_file(run / "best.pt")
    assert "passed" in out + err


def test_a_stale_int8_graph_is_refused_with_how_to_remake_it(world, tmp_path):
    from ftedge.formats.run import RunFolder
    from ftedge.graph.metadata import read_metadata

    run = _copy(world["run"], tmp_path / "run")
    graph = run / "model.fp32.onnx"  # any graph of the run records what it was made from
    assert RunFolder(run).stale_reason(graph) is None
    (run / "best.pt").write_bytes((run / "best.pt").read_bytes() + b"\0")
    assert "earlier best.pt" in RunFolder(run).stale_reason(graph)
    (run / "best.pt").unlink()
    assert "is gone" in RunFolder(run).stale_reason(graph)
    assert read_metadata(graph)["ftedge.checkpoint"] == "best.pt"


def test_the_reexport_hint_for_a_damaged_artifact_works(world, monkeypatch, capsys, tmp_path):
    import re
    import shlex

    art = _copy(world["art"], tmp_path / "art")
    model = art / json.loads((art / "manifest.json").read_text())["artifact"]
    model.write_bytes(model.read_bytes()[:100])
    code, _, err = run_cli(monkeypatch, capsys, "eval", art)
    assert code == 2 and "--force" not in err
    hint = " ".join(err.split("How to fix:")[1].split())
    mv, cmd = re.search(r"\(mv (.+?)\), then: ftedge (.+)$", hint).groups()
    src, dst = shlex.split(mv)
    os.replace(src, dst)
    code, _, err = run_cli(monkeypatch, capsys, *shlex.split(cmd))
    assert code == 0, err
    code, _, _ = run_cli(monkeypatch, capsys, "eval", art)
    assert code == 0


def test_a_run_missing_split_json_is_a_run_not_an_artifact(world, monkeypatch, capsys,
                                                           tmp_path):
    run = _copy(world["run"], tmp_path / "run")
    (run / "split.json").unlink()
    code, _, err = run_cli(monkeypatch, capsys, "eval", run)
    assert code == 2 and "artifact" not in err and "split.json" in err and "--data" in err
    code, _, err = run_cli(monkeypatch, capsys, "eval", run, "--data", world["data"])
    assert code == 0, err


def test_resuming_a_finished_run_changes_nothing(world, monkeypatch, capsys, tmp_path):
    run = _copy(world["run"], tmp_path / "run")
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    code, _, err = run_cli(monkeypatch, capsys, "tune", "--resume", run)
    assert code == 0 and "is finished" in err
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before


def test_openvino_and_onnxruntime_telemetry_are_off(world, tmp_path):
    """An OpenVINO export (which also runs ONNX Runtime: parity, the unknown score) and the
    artifact's deploy/infer.py write nothing of OpenVINO's ($HOME/intel: consent file, client
    id) nor ONNX Runtime's ($HOME/.cache/Microsoft/DeveloperTools/.onnxruntime/deviceid)."""
    import subprocess
    import sys

    pytest.importorskip("openvino")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORT_")
           and k not in ("CI", "XDG_CACHE_HOME")}  # both stay quiet in CI: test the real case
    env.update(HOME=str(home), PYTHONPATH=os.getcwd())
    r = subprocess.run([sys.executable, "-m", "ftedge", "export", str(world["run"]), "--target",
                        "openvino-cpu", "--precision", "fp32", "--out", str(tmp_path / "ov")],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    image = next((world["data"]).rglob("*.png"))
    for art in (tmp_path / "ov", world["art"]):  # OpenVINO's and ONNX Runtime's infer.py
        r = subprocess.run([sys.executable, str(art / "deploy" / "infer.py"), str(image)],
                           env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    assert not (home / "intel").exists()
    # matplotlib's font cache is written as on any machine; nothing of OpenVINO's or ORT's
    written = [str(p.relative_to(home)) for p in home.rglob("*")]
    assert not [w for w in written if any(k in w.lower() for k in (
        "openvino", "intel", "microsoft", "onnxruntime"))], written


def test_onnxruntime_telemetry_stays_as_the_user_set_it(monkeypatch):
    """ftedge sets ORT's opt-out variables only where the user left them unset."""
    from ftedge.config import disable_telemetry

    monkeypatch.setenv("ORT_DISABLE_TELEMETRY", "0")
    monkeypatch.delenv("ORT_TELEMETRY_DISABLED", raising=False)
    disable_telemetry()
    assert os.environ["ORT_DISABLE_TELEMETRY"] == "0"
    assert os.environ["ORT_TELEMETRY_DISABLED"] == "1"


def test_an_artifact_knows_when_its_run_changed_since_export(world, tmp_path):
    """bench --target and export --precision auto export again, instead of reusing, an
    artifact whose run's checkpoint changed since."""
    import ftedge
    from ftedge.pick import _stale
    from ftedge.formats.artifact import stale_reason

    run = _copy(world["run"], tmp_path / "run")
    art = ftedge.export_run(run, "onnxruntime-cpu", precision="fp32", out=tmp_path / "art",
                            log=lambda m: None).folder
    assert stale_reason(art) is None and _stale(art) is False
    assert _stale(tmp_path / "nothing") is None
    (run / "best.pt").write_bytes((run / "best.pt").read_bytes() + b"\0")
    assert "best.pt changed since it was exported" in stale_reason(art)
    assert "changed" in _stale(art)


def test_bench_says_why_an_artifact_of_a_changed_run_is_judged_against_another_model(
        world, tmp_path):
    """A resumed run rewrote best.pt after export: bench's FP32 reference is the new model,
    so its drop is the two models' gap; the row and the progress say so, with the export
    command that makes the gate fair again."""
    import ftedge
    from ftedge.stages.bench.bench import BenchOptions, bench

    run = _copy(world["run"], tmp_path / "run")
    art = ftedge.export_run(run, "onnxruntime-cpu", precision="fp32", out=tmp_path / "art",
                            log=lambda m: None).folder
    ckpt = torch.load(run / "best.pt", weights_only=True)
    bias = [k for k in ckpt["model_state"] if k.endswith("bias")][-1]
    ckpt["model_state"][bias] = ckpt["model_state"][bias] + 1.0
    torch.save(ckpt, run / "best.pt")
    report = bench([art], opts=BenchOptions(batches=(1,), runs=2, warmup=0, e2e_images=2,
                                            camera_images=0))
    row = report["artifacts"][0]
    assert "best.pt changed since it was exported" in row["stale"]
    assert f"ftedge export {run} --target onnxruntime-cpu --precision fp32 --force" in \
        row["accuracy"]["note"]
    from ftedge.stages.bench.report import artifact_problem, markdown

    assert "fair gate" in artifact_problem(row) and "fair gate" in markdown(report)


def test_calibrate_on_an_artifact_names_its_run_and_its_own_values(world, monkeypatch, capsys):
    """The hint is runnable: the artifact's own run, target and precision, no placeholders."""
    code, _, err = run_cli(monkeypatch, capsys, "calibrate", world["art"])
    assert code == 2 and "is an artifact" in err and "it has its own (T = " in err
    assert f"ftedge calibrate {world['run']}" in err
    assert "--target onnxruntime-cpu --precision fp32" in err and "RUN" not in err


def test_bench_says_on_the_console_why_an_artifact_did_not_run(world, monkeypatch, capsys,
                                                                tmp_path):
    """The table says ERROR (did not run); the reason and its fix follow on the console, not
    only in report.md."""
    (tmp_path / "empty").mkdir()
    code, out, err = run_cli(monkeypatch, capsys, "bench", world["art"], "--data",
                             tmp_path / "empty", "--runs", 1, "--batch", 1, "--camera-images",
                             0, "--out", tmp_path / "b")
    assert code == 4 and "ERROR (did not run)" in out
    assert "error: " in err and "holds 0 class folder(s)" in err and "how to fix" in err
