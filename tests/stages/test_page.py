"""`ftedge report RUN --html`: the page's facts measured from the run's graphs, and the page
opened in a real headless browser."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from ftedge.data.folder import Sample
from ftedge.render.page import Missing, Tiles
from ftedge.stages.page import Graph, Val, errors_section, flips_section
from tests.conftest import COLOURS, make_image
from tests.test_cli import run_cli


def _val(tmp_path, n=6) -> Val:
    rng = np.random.default_rng(0)
    samples = []
    for i in range(n):
        path = tmp_path / f"{i}.png"
        make_image(COLOURS["red"], rng).save(path)
        samples.append(Sample(path, i % 3))
    return Val(samples, np.array([s.label for s in samples]), ["red", "gr<e>en", "blue"],
               {"background": [255, 255, 255]})


def _logits(preds, conf=4.0) -> np.ndarray:
    z = np.zeros((len(preds), 3))
    z[np.arange(len(preds)), preds] = conf
    return z


def test_worst_errors_are_the_most_confident_misclassified(tmp_path):
    val = _val(tmp_path)  # labels 0 1 2 0 1 2
    z = _logits([0, 0, 2, 1, 1, 2])
    z[1, 0], z[3, 1] = 9.0, 2.0  # image 1 wrong with more confidence than image 3
    s = errors_section(val, Graph("model.fp32.onnx", z), tmp_path)
    assert "2 of 6 val images misclassified" in s.blocks[0].text
    tiles = s.blocks[1].tiles
    assert [t.lines[:2] for t in tiles] == [["true: gr<e>en", "pred: red"],
                                            ["true: red", "pred: gr<e>en"]]
    assert all(t.uri and t.uri.startswith("data:image/jpeg") for t in tiles)


def test_flips_counted_lost_gained_and_neither(tmp_path):
    val = _val(tmp_path)  # labels 0 1 2 0 1 2
    fp32 = Graph("model.fp32.onnx", _logits([0, 1, 2, 0, 0, 2]))
    int8 = Graph("model.int8.onnx", _logits([1, 1, 0, 0, 1, 1]))
    s = flips_section(val, fp32, int8, run=tmp_path)
    assert ("4 of 6 val images get another top-1 from model.int8.onnx than from "
            "model.fp32.onnx (both in ONNX Runtime): 3 lost (FP32 right, INT8 wrong), 1 gained, "
            "0 wrong either way") in s.blocks[0].text
    tones = [t.tone for t in s.blocks[1].tiles]
    assert tones == ["bad", "bad", "bad", "good"]
    none = flips_section(val, fp32, None, run=tmp_path)
    assert isinstance(none.blocks[0], Missing) and "ftedge quantize" in none.blocks[0].command


@pytest.fixture(scope="module")
def page_run(qat_run, tmp_path_factory):
    """A copy of the tiny QAT run and its data, one red val image replaced by a blue one (a
    confident error the page must show first)."""
    root = tmp_path_factory.mktemp("page")
    run = root / "run"
    shutil.copytree(qat_run.run_dir, run)
    record = json.loads((run / "split.json").read_text())
    shutil.copytree(record["root"], root / "data")
    record["root"] = str(root / "data")
    (run / "split.json").write_text(json.dumps(record))
    rel = next(p for p, c in record["val"] if c == "red")
    make_image(COLOURS["blue"], np.random.default_rng(1)).save(root / "data" / rel)
    return run, rel


def test_report_html_writes_a_self_contained_page(page_run, monkeypatch, capsys):
    run, rel = page_run
    out = run.parent / "page.html"
    code, stdout, err = run_cli(monkeypatch, capsys, "report", run, "--html", "--out", out)
    assert code == 0, err
    assert f"page written to {out}" in stdout
    page = out.read_text()
    for sid in ("errors", "per-class", "flips", "calibration", "unknown", "data"):
        assert f'<section id="{sid}">' in page
    first = re.search(r'<div class="tile bad" title="([^"]+)">', page)
    assert first and first.group(1).endswith(rel)  # the planted error comes first
    assert "true: red<br>pred: blue" in page
    assert not re.search(r'(src|href)="(?!data:|#)', page)  # nothing loaded from outside
    assert out.stat().st_size < 5 * 2**20
    # a file the user wrote is not replaced without --force; the page itself is
    mine = run.parent / "mine.html"
    mine.write_text("<html>my notes</html>")
    code, _, err = run_cli(monkeypatch, capsys, "report", run, "--html", "--out", mine)
    assert code == 2 and "not a page ftedge wrote" in err and "my notes" in mine.read_text()
    assert run_cli(monkeypatch, capsys, "report", run, "--html", "--out", out)[0] == 0


def test_report_without_html_points_a_run_folder_to_it(page_run, monkeypatch, capsys):
    run, _ = page_run
    code, _, err = run_cli(monkeypatch, capsys, "report", run)
    assert code == 2 and f"ftedge report {run} --html" in err


@pytest.mark.slow
def test_page_renders_with_its_images_in_headless_chromium(page_run, monkeypatch, capsys):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it "
                    "when it runs as root with apt)")
    run, _ = page_run
    out = run.parent / "browser.html"
    assert run_cli(monkeypatch, capsys, "report", run, "--html", "--out", out)[0] == 0
    n_img = out.read_text().count("<img ")
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu",
             "--run-all-compositor-stages-before-draw", "--virtual-time-budget=5000"]
    dom = subprocess.run([*flags, "--dump-dom", out.resolve().as_uri()], capture_output=True,
                         text=True, timeout=120).stdout
    body = re.search(r'<body data-images-loaded="(\d+)" data-images-total="(\d+)"', dom)
    assert body, dom[:500]
    assert n_img > 0 and body.groups() == (str(n_img), str(n_img))  # every image decoded
    assert '<section id="flips">' in dom and "Missing:" in dom
    shot = run.parent / "shot.png"
    subprocess.run([*flags, "--hide-scrollbars", f"--screenshot={shot}",
                    "--window-size=1200,3000", out.resolve().as_uri()], capture_output=True,
                   timeout=120)
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (3000, 1200)
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50  # text, thumbnails, the diagram


def test_data_section_shows_the_audits_findings(tmp_path):
    from ftedge.render.page import Pairs, Text
    from ftedge.stages.page import data_section

    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png", "c.png"):
        make_image(COLOURS["green"], rng).save(tmp_path / name)
    audit = {"root": str(tmp_path), "classes": ["red", "green"],
             "duplicates": [
                 {"a": str(tmp_path / "a.png"), "b": str(tmp_path / "b.png"), "split_a": "train",
                  "split_b": "train", "class_a": "green", "class_b": "green",
                  "kind": "near-duplicate", "bits": 4, "leak": False, "label_conflict": False},
                 {"a": str(tmp_path / "a.png"), "b": "c.png", "split_a": "train",
                  "split_b": "val", "class_a": "green", "class_b": "red",
                  "kind": "identical file", "bits": 0, "leak": True, "label_conflict": True}],
             "outliers": [], "label_issues": None}
    (tmp_path / "audit.json").write_text(json.dumps(audit))
    s = data_section(tmp_path / "run", str(tmp_path / "audit.json"))
    missing = [b for b in s.blocks if isinstance(b, Missing)]
    assert len(missing) == 1 and "--labels" in missing[0].command  # label check not run
    pairs = next(b for b in s.blocks if isinstance(b, Pairs)).pairs
    assert pairs[0][2] == "LABEL CONFLICT LEAK identical file"  # conflicts first
    assert pairs[0][1].lines == ["val/red", "c.png"] and pairs[0][1].uri  # found beside audit
    assert any(isinstance(b, Text) and b.text == "No outliers." for b in s.blocks)
    audit["label_issues"] = [{"path": str(tmp_path / "c.png"), "given": "red",
                              "suggested": "green", "label_quality": 0.031}]
    (tmp_path / "audit.json").write_text(json.dumps(audit))
    s = data_section(tmp_path / "run", str(tmp_path / "audit.json"))
    assert s.complete
    tile = next(b for b in s.blocks if isinstance(b, Tiles)).tiles[0]
    assert tile.lines == ["in: red", "looks like: green", "p(given) 0.03"]
    nothing = data_section(tmp_path / "run", None)
    assert not nothing.complete and "ftedge data check DATA --labels" in nothing.blocks[0].command


def test_a_run_without_graphs_gets_its_fp32_graph_and_says_int8_is_missing(page_run, tmp_path):
    from ftedge.stages.page import build_page

    run = tmp_path / "run"
    shutil.copytree(page_run[0], run, ignore=shutil.ignore_patterns("*.onnx", "gate*"))
    page = build_page(run)
    assert (run / "model.fp32.onnx").is_file()  # from best.pt, as export makes it
    assert "misclassified by model.fp32.onnx" in page
    flips = page[page.index('<section id="flips">'):]
    assert flips.index("<b>Missing:</b> an INT8 graph in the run") < flips.index("</section>")


def test_report_html_never_replaces_a_file_ftedge_did_not_write(tmp_path):
    """--out may name a checkpoint, a manifest or the user's notes: refused, --force or not,
    before any work; a FIFO at --out is refused instead of read forever."""
    import os

    from ftedge.errors import FtedgeError, RunError
    from ftedge.stages.page import write_page

    mine = tmp_path / "best.pt"
    mine.write_bytes(b"weights")
    for force in (False, True):
        with pytest.raises(RunError, match="not a page ftedge wrote") as e:
            write_page(tmp_path, mine, force=force)
        assert "another --out" in e.value.hint
    assert mine.read_bytes() == b"weights"
    os.mkfifo(tmp_path / "p.html")
    with pytest.raises(FtedgeError, match="not a regular file"):
        write_page(tmp_path, tmp_path / "p.html")


@pytest.mark.parametrize("audit", [
    {"classes": ["a"], "duplicates": 5},
    {"classes": ["a"], "duplicates": [{"a": "x.png"}]},
    {"classes": ["a"], "label_issues": [{"path": "x.png", "label_quality": "low"}]},
    {"classes": ["a"], "outliers": [["x.png"]]},
])
def test_an_audit_json_of_another_shape_is_refused_naming_its_key(tmp_path, audit):
    from ftedge.errors import RunError
    from ftedge.stages.page import _audit_record

    path = tmp_path / "audit.json"
    path.write_text(json.dumps(audit))
    key = next(k for k in audit if k != "classes")
    with pytest.raises(RunError, match=f"'{key}' are not what") as e:
        _audit_record(tmp_path, str(path))
    assert "ftedge data check DATA --json" in e.value.hint


def test_an_int8_graph_from_an_earlier_checkpoint_is_left_off_saying_why(qat_run, tmp_path):
    """A resumed run rewrote the checkpoint the INT8 graph was made from: the page leaves
    the graph off (its flips would be the two checkpoints' differences) and says how to
    remake it, as export refuses it."""
    import onnx

    from ftedge.formats.run import RunFolder
    from ftedge.stages.page import int8_graph

    from ftedge.formats.run import INT8_ONNX

    run = tmp_path / "run"
    shutil.copytree(qat_run.run_dir, run)
    # another test may have quantized the shared run (PTQ): the QAT graph is this test's
    (run / INT8_ONNX["ptq"]).unlink(missing_ok=True)
    graph = int8_graph(RunFolder(run))
    assert graph == run / "model.int8.onnx"
    meta = {p.key: p.value for p in onnx.load(str(graph), load_external_data=False).metadata_props}
    source = run / meta["ftedge.checkpoint"]
    source.write_bytes(source.read_bytes() + b"\0")
    said = []
    assert int8_graph(RunFolder(run), said.append) is None
    assert "model.int8.onnx is left off the page" in said[0] and "re-create it" in said[0]


def test_unknown_section_shows_what_the_shipped_artifact_accepts_and_rejects(page_run, tmp_path):
    """The section scores val and the unknown folder with the exported artifact's own graph
    and threshold: its counts are the artifact's, recomputed here from its outputs."""
    from PIL import Image

    from ftedge.data.transforms import preprocess_samples
    from ftedge.render.page import Text
    from ftedge.runtime import infer_scored
    from ftedge.runtime.artifact import load_artifact
    from ftedge.stages.export.exporter import export_run
    from ftedge.stages.page import load_val, unknown_images, unknown_section
    from ftedge.formats.run import RunFolder

    run = tmp_path / "run"
    shutil.copytree(page_run[0], run)
    shutil.rmtree(run / "exports", ignore_errors=True)  # other tests may export into the run
    no_artifact = unknown_section(run, load_val(RunFolder.open(run)), None, log=lambda m: None)
    assert isinstance(no_artifact.blocks[0], Missing)
    folder = export_run(run, "onnxruntime-cpu", precision="int8",
                        out=run / "exports" / "onnxruntime-cpu-int8", log=lambda m: None).folder
    others = tmp_path / "others"
    others.mkdir()
    rng = np.random.default_rng(5)
    for i in range(4):  # noise and greys: none of red, green, blue
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(
            others / f"noise{i}.png")
        Image.fromarray(np.full((24, 24, 3), 70 + 40 * i, np.uint8)).save(others / f"grey{i}.png")
    val = load_val(RunFolder.open(run))
    s = unknown_section(run, val, str(others), log=lambda m: None)
    loaded = load_artifact(folder)
    thr = float(loaded.manifest.unknown["threshold"])
    _, known = infer_scored(loaded.runner, preprocess_samples(val.samples, val.contract))
    samples = unknown_images(others)
    _, foreign = infer_scored(loaded.runner, preprocess_samples(samples, val.contract))
    texts = " ".join(b.text for b in s.blocks if isinstance(b, Text))
    assert (f"Here {int((known > thr).sum())} of {len(val.labels)} known val images are "
            "rejected") in texts
    assert (f"{int((foreign <= thr).sum())} of {len(samples)} images of {others} are "
            "accepted") in texts
    assert len(samples) == 8
