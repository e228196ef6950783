"""One command reads each input once: one INT8 export parses its source graph once and hashes
split.json/best.pt/qat_best.pt once, and an export, a bench of its artifact, an eval and a
predict each parse every JSON run file and load every checkpoint once (io.memoised_reads;
tests/io_counts.py counts)."""

import torch

from ftedge.formats.artifact import MANIFEST
from ftedge.formats.run import BEST, GATE, QAT_BEST, SPLIT, RunFolder
from ftedge.io import memoised_reads, read_json, safe_torch_load, sha256_file
from ftedge.stages.bench.bench import BenchOptions, bench
from ftedge.stages.export.exporter import export_run
from ftedge.stages.inference import evaluate, predict
from tests.io_counts import count_reads

ONCE = ("most_parses_of_one_file", "most_hashes_of_one_file", "most_json_parses_of_one_file",
        "most_checkpoint_loads_of_one_file")


def test_one_int8_export_bench_and_eval_read_each_file_once(qat_run, tmp_path):
    run = RunFolder(qat_run.run_dir)
    art = tmp_path / "a"
    with count_reads() as reads:
        export_run(run.path, "onnxruntime-cpu", precision="int8", out=art, log=lambda m: None)
    s = reads.summary()
    assert all(s[k] == 1 for k in ONCE), s
    assert reads.of(run.int8_onnx("qat")) == (1, 1)
    for name in (SPLIT, BEST, QAT_BEST):
        assert reads.of(run.file(name))[1] == 1, name
    # parsed 4 times (split.json) and loaded twice (qat_best.pt) before memoising
    assert reads.loads(run.file(SPLIT)) == (1, 0)
    assert reads.loads(run.file(f"{GATE['qat']}.json")) == (1, 0)
    assert reads.loads(run.file(QAT_BEST)) == (0, 1) and reads.loads(run.file(BEST)) == (0, 1)

    with count_reads() as reads:
        bench([art], opts=BenchOptions(batches=(1,), warmup=1, runs=2, e2e_images=2,
                                       camera_images=0))
    s = reads.summary()
    assert all(s[k] <= 1 for k in ONCE), s
    assert reads.loads(art / MANIFEST) == (1, 0)  # 3 parses before
    assert reads.loads(run.file(SPLIT)) == (1, 0) and reads.loads(run.file(BEST)) == (0, 1)

    images = [str(s.path) for s in run.samples("val", run.split()["classes"])][:2]
    for command in (lambda: evaluate(run.path), lambda: predict(run.path, images)):
        with count_reads() as reads:
            command()
        s = reads.summary()
        assert all(s[k] <= 1 for k in ONCE), s
        assert reads.loads(run.file(BEST)) == (0, 1)


def test_callers_get_their_own_copies(tmp_path):
    j, pt = tmp_path / "x.json", tmp_path / "x.pt"
    j.write_text('{"rows": [["a", "b"]], "n": {"k": 1}}')
    torch.save({"w": torch.zeros(3), "meta": {"names": ["a"]}}, pt)
    with count_reads() as reads, memoised_reads():
        first = read_json(j)
        first["rows"][0].append("c")
        first["n"]["k"] = 2
        assert read_json(j) == {"rows": [["a", "b"]], "n": {"k": 1}}
        ckpt = safe_torch_load(pt)
        ckpt["w"].add_(1)  # as an optimizer does to the state it was given
        ckpt["meta"]["names"].append("b")
        again = safe_torch_load(pt)
        assert again["w"].tolist() == [0.0, 0.0, 0.0] and again["meta"]["names"] == ["a"]
    assert reads.loads(j) == (1, 0) and reads.loads(pt) == (0, 1)


def test_a_file_written_again_is_read_again(tmp_path):
    f, j = tmp_path / "x", tmp_path / "x.json"
    f.write_text("one")
    j.write_text("[1]")
    with count_reads() as reads, memoised_reads():
        first = sha256_file(f)
        assert sha256_file(f) == first
        assert read_json(j) == read_json(j) == [1]
        (tmp_path / "y").write_text("two")
        (tmp_path / "y").replace(f)  # an atomic write: a new file under the same name
        (tmp_path / "y").write_text("[2]")
        (tmp_path / "y").replace(j)
        assert sha256_file(f) != first
        assert read_json(j) == [2]
    assert reads.of(f) == (0, 2) and reads.loads(j) == (2, 0)


def test_outside_a_command_every_read_is_fresh(tmp_path):
    f = tmp_path / "x.json"
    f.write_text("{}")
    with count_reads() as reads:
        sha256_file(f)
        sha256_file(f)
        read_json(f)
        read_json(f)
    assert reads.of(f) == (0, 2) and reads.loads(f) == (2, 0)
