import json
import os
import signal
import subprocess
import sys

import pytest

from ftedge.cli import main
from tests.conftest import tiny_options, write_class_folders


def run_cli(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["ftedge", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_data_check_lists_counts_and_bad_files(monkeypatch, capsys, colour_data):
    (colour_data / "red" / "broken.jpg").write_bytes(b"\xff\xd8\xff")
    code, out, err = run_cli(monkeypatch, capsys, "data", "check", colour_data)
    assert code == 0
    assert "3 classes, 36 train" in out and "broken.jpg" in out and "imbalance" in out
    code, out, _ = run_cli(monkeypatch, capsys, "data", "check", colour_data, "--json")
    rep = json.loads(out)
    assert rep["train_counts"] == [12, 12, 12] and len(rep["unusable"]) == 1


def test_user_errors_exit_2_with_a_fix(monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, "data", "check", tmp_path / "missing")
    assert code == 2 and "data folder not found" in err and "How to fix" in err
    code, _, err = run_cli(monkeypatch, capsys, "tune", "--data", tmp_path, "--model", "resnet999")
    assert code == 2 and "unknown model" in err


def test_tune_eval_predict_from_the_command_line(monkeypatch, capsys, tmp_path):
    data = write_class_folders(tmp_path / "c", per_class=12)
    opts = tiny_options(tmp_path)
    args = ["tune", "--data", data, "--out", opts["out"], "--model", opts["model"],
            "--img-size", 32, "--epochs", 2, "--batch-size", 8, "--lr", opts["lr"],
            "--device", "cpu", "--workers", 0, "--no-label-check"]
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0 and f"run written to {opts['out']}" in err.replace("\n", "")
    assert "label check" not in err  # --no-label-check reached the config
    code, out, _ = run_cli(monkeypatch, capsys, "eval", opts["out"], "--json")
    rep = json.loads(out)
    assert {"top1", "top5", "per_class"} <= set(rep) and rep["n"] == 6
    code, out, _ = run_cli(monkeypatch, capsys, "eval", opts["out"], "--data", data)
    assert code == 0
    code, out, _ = run_cli(monkeypatch, capsys, "predict", opts["out"],
                           data / "red" / "000.png", "--topk", 3)
    assert code == 0 and out.startswith(str(data / "red" / "000.png")) and out.count(",") == 2


@pytest.mark.parametrize("args, want", [
    (["quantize", "{d}", "--graph", "ptq"], "give it with --sensitivity"),
    (["quantize", "{d}", "--max-drop", "-20", "--fallback-cap", "nan"],
     "--fallback-cap must be a finite number"),
    (["quantize", "{d}", "--max-drop", "nan"], "--max-drop must be a finite number"),
    (["bench", "{d}", "--max-drop", "nan"], "--max-drop must be a finite number"),
    (["export", "{d}", "--target", "onnxruntime-cpu", "--precision", "auto", "--max-drop",
      "nan"], "--max-drop must be a finite number"),
    (["bench", "{d}", "--runs", "0"], "--runs"), (["bench", "{d}", "--time", "-1"], "--time"),
    (["bench", "{d}", "--time", "nan"], "--time must be a finite number"),
    (["bench", "{d}", "--warmup", "-1"], "--warmup"),
])
def test_number_options_are_checked_before_any_work(monkeypatch, capsys, tmp_path, args, want):
    (tmp_path / "keep.txt").write_text("mine")
    code, out, err = run_cli(monkeypatch, capsys, *[a.format(d=tmp_path) for a in args])
    assert code == 2 and want in err and "Traceback" not in err + out
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


SELF_TERM = """
import os, signal, sys, time
import click
from ftedge.cli import cli, main
from ftedge.formats.owned import staged_folder
from ftedge.io import atomic_path

@cli.command("selfterm")
@click.argument("out")
@click.argument("how")
def selfterm(out, how):
    with staged_folder(out, "artifact") if how == "folder" else atomic_path(out) as tmp:
        (tmp / "half" if how == "folder" else tmp).write_text("half-written")
        os.kill(os.getpid(), signal.SIGTERM)  # what timeout, a CI cancel, docker stop send
        time.sleep(60)

sys.argv = ["ftedge", "selfterm", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("how", ["folder", "file"])
def test_sigterm_cleans_up_like_ctrl_c(tmp_path, how):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]  # this checkout's ftedge, not an installed one
    out = tmp_path / "out" / ("art" if how == "folder" else "report.json")
    proc = subprocess.run([sys.executable, "-c", SELF_TERM, str(out), how], cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-2000:]
    assert "terminated (SIGTERM)" in proc.stderr and "Traceback" not in proc.stderr
    assert list(out.parent.iterdir()) == []  # no hidden temp folder or file left


def test_models_lists_registry(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "models")
    assert "efficientnet_lite0" in out and "mobilenet_v3_large" in out


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    """DDP on gloo with two CPU ranks, QAT stage included: one run folder, written by rank 0.
    Each rank destroys its process group with no DDP wrapper alive: a wrapper holds the group,
    and one left to the interpreter's exit aborted a rank (SIGABRT) in CI."""
    data = write_class_folders(tmp_path / "c", per_class=12)
    out = tmp_path / "ddp"
    # `python -m ftedge`, with destroy_process_group observed
    launcher = tmp_path / "ftedge_checking_ddp.py"
    launcher.write_text(
        "import gc, runpy, sys\n"
        "import torch.distributed as dist, torch.nn as nn\n"
        "destroy = dist.destroy_process_group\n"
        "def observed(*args, **kwargs):\n"
        "    live = sum(isinstance(o, nn.parallel.DistributedDataParallel)\n"
        "               for o in gc.get_objects())\n"
        "    print(f'DDP wrappers alive at destroy_process_group: {live}', file=sys.stderr)\n"
        "    destroy(*args, **kwargs)\n"
        "dist.destroy_process_group = observed\n"
        "runpy.run_module('ftedge', run_name='__main__', alter_sys=True)\n")
    # --standalone: torchrun takes a free port (a fixed one fails when another job holds it)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(launcher), "tune", "--data", str(data), "--out",
           str(out), "--img-size", "32", "--epochs", "3", "--batch-size", "8", "--lr", "0.005",
           "--device", "cpu", "--qat", "--qat-epochs", "1", "--max-drop", "100"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    destroyed = [line for line in proc.stderr.splitlines() if "alive at destroy" in line]
    assert destroyed == ["DDP wrappers alive at destroy_process_group: 0"] * 2, destroyed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs_run"] == 4  # 3 FP32 + 1 QAT
    assert summary["qat"]["coverage"]["float_layers"] == []  # read from model.int8.onnx
    assert (out / "model.int8.onnx").is_file() and (out / "gate.json").is_file()
    assert proc.stderr.count("run written to") == 1  # only rank 0 reports and writes
    assert not list(out.glob(".*.tmp"))
    history = json.loads((out / "metrics.json").read_text())
    assert all(h["train_loss"] > 0 for h in history)


def test_a_forked_worker_stopped_by_sigterm_exits_quietly(capfd):
    """DataLoader and process-pool workers are forked with the CLI's SIGTERM handler; their
    parent stops them with SIGTERM: they die of it as by default, with no traceback."""
    import multiprocessing
    import os
    import signal
    import time

    from ftedge import cli

    previous = signal.signal(signal.SIGTERM, cli._terminate)
    main_pid, cli._MAIN_PID = cli._MAIN_PID, os.getpid()
    try:
        worker = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,))
        worker.start()
        time.sleep(0.5)
        worker.terminate()
        worker.join(30)
    finally:
        signal.signal(signal.SIGTERM, previous)
        cli._MAIN_PID = main_pid
    assert worker.exitcode == -signal.SIGTERM
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("stdout", ["closed pipe", "/dev/full"])
def test_results_that_cannot_be_written_end_without_a_traceback(tmp_path, colour_data, stdout):
    """`ftedge ... | head` (the reader closed the pipe) ends quietly, exit 1 as click ends it;
    results sent to a full disk say so, blaming the output rather than a path, exit 2."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if stdout == "closed pipe":
        read_end, out = os.pipe()
        os.close(read_end)  # every write now fails with EPIPE
    else:
        out = os.open("/dev/full", os.O_WRONLY)
    try:
        proc = subprocess.run([sys.executable, "-m", "ftedge", "data", "check", str(colour_data),
                               "--json"], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                              stdout=out, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(out)
    assert proc.returncode == (1 if stdout == "closed pipe" else 2), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    if stdout == "closed pipe":
        assert proc.stderr.strip() == ""
    else:
        assert "cannot write the output: No space left on device" in proc.stderr
        assert "(> FILE)" in proc.stderr
