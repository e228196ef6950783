"""One INT8 export reads each input once: its source graph parsed once, split.json, best.pt,
qat_best.pt and the graph hashed once (io.memoised_reads; tests/io_counts.py counts)."""

from ftedge.formats.run import BEST, QAT_BEST, SPLIT, RunFolder
from ftedge.io import memoised_reads, sha256_file
from ftedge.stages.export.exporter import export_run
from tests.io_counts import count_reads


def test_one_int8_export_parses_and_hashes_each_file_once(qat_run, tmp_path):
    run = RunFolder(qat_run.run_dir)
    with count_reads() as reads:
        export_run(run.path, "onnxruntime-cpu", precision="int8", out=tmp_path / "a",
                   log=lambda m: None)
    s = reads.summary()
    assert s["most_parses_of_one_file"] == 1 and s["most_hashes_of_one_file"] == 1, s
    assert reads.of(run.int8_onnx("qat")) == (1, 1)
    for name in (SPLIT, BEST, QAT_BEST):
        assert reads.of(run.file(name))[1] == 1, name


def test_a_file_written_again_is_hashed_again(tmp_path):
    f = tmp_path / "x"
    f.write_text("one")
    with count_reads() as reads, memoised_reads():
        first = sha256_file(f)
        assert sha256_file(f) == first
        (tmp_path / "y").write_text("two")
        (tmp_path / "y").replace(f)  # an atomic write: a new file under the same name
        assert sha256_file(f) != first
    assert reads.of(f) == (0, 2)


def test_outside_a_command_every_hash_is_fresh(tmp_path):
    f = tmp_path / "x"
    f.write_text("one")
    with count_reads() as reads:
        sha256_file(f)
        sha256_file(f)
    assert reads.of(f) == (0, 2)
