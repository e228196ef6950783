"""What the stages share, and the only module one stage may import from another's: which
images a model is judged on (eval, predict and bench alike), what one input becomes for a
model (predict and bench's camera rows alike), how an INT8 graph's gate is written and
announced (tune --qat and quantize alike) and the sensitivity scan's progress bar. Anything
else a stage needs from another comes from disk (the run folder, the artifact folder) or from
a library below."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Iterator

from ftedge.console import console, make_progress
from ftedge.data.audit import audit_dataset
from ftedge.data.folder import Sample
from ftedge.errors import DatasetError, RunError
from ftedge.formats.run import GATE, SPLIT, RunFolder
from ftedge.quant.gate import drop_text, write_gate
from ftedge.runtime import LoadedModel

SPLITS = ("val", "test", "train")


def _run_of(loaded: LoadedModel) -> RunFolder:
    """The run whose split an artifact (or a run) is evaluated on by default."""
    if loaded.kind == "artifact":
        run = Path(loaded.manifest.source["run"])
        if not (run / SPLIT).is_file():
            raise RunError(f"the artifact's source run {run} is not here",
                           "pass --data DIR (class folders) to evaluate on")
        return RunFolder(run)
    return RunFolder(loaded.path)


def eval_samples(loaded: LoadedModel, data: str | Path | None, split: str = "val"
                 ) -> list[Sample]:
    """The recorded `split` of the model's run, or the images of `data` in the model's classes."""
    if split not in SPLITS:
        raise DatasetError(f"--split {split!r} is not one of {', '.join(SPLITS)}")
    if data is None:
        return _run_of(loaded).samples(split, loaded.classes)
    audit = audit_dataset(data, min_classes=1)  # a subset of the model's classes is fine
    picked = {"val": audit.val, "test": audit.test, "train": audit.train}[split]
    samples = picked if picked is not None else audit.train
    unknown = sorted(set(audit.classes) - set(loaded.classes))
    if unknown:
        raise DatasetError(f"{data} has classes the model was not trained on: {', '.join(unknown)}",
                           f"the model knows: {', '.join(loaded.classes)}")
    remap = [loaded.classes.index(c) for c in audit.classes]
    return [Sample(s.path, remap[s.label]) for s in samples]


GATE_LABEL = {"qat": "INT8 gate", "ptq": "PTQ INT8 gate"}


def publish_gate(int8_path: Path, result: dict, *, kind: str, title: str) -> Path:
    """Write the gate of the INT8 graph `kind` ("qat": gate.json/.md, "ptq": gate_ptq.*)
    beside it (quant.gate.write_gate) and print its verdict; returns the .md report."""
    _, md = write_gate(int8_path, result, name=GATE[kind], title=title)
    verdict = "[green]passed" if result["passed"] else "[red]FAILED"
    console.print(f"{GATE_LABEL[kind]} {verdict}[/]: FP32 top-1 {result['fp32_top1']:.4f}, INT8 "
                  f"(ONNX Runtime) {result['int8_top1']:.4f}, {drop_text(result)}; {int8_path} "
                  f"and {md}", soft_wrap=True)
    return md


@contextlib.contextmanager
def layer_progress() -> Iterator[Callable[[int, int, str], None]]:
    """A progress bar for quant.sensitivity's per-layer scan: the `on_layer` callback to hand
    it (the library only reports each layer; the stage draws)."""
    with make_progress(transient=True) as progress:
        task = None

        def on_layer(done: int, total: int, name: str) -> None:
            nonlocal task
            if task is None:
                task = progress.add_task("sensitivity", total=total, stats="")
            progress.update(task, completed=done, stats=name)
        yield on_layer


def native_inputs(runner, contract: dict) -> tuple[Callable, object]:
    """(prepare, model): what one input (a file path or an HxWx3 uint8 frame) becomes, and the
    runner to feed it to. An artifact that normalises in its graph (PixelInputRunner) is
    prepared its 8-bit pixels, as the kit's infer.py does, and fed to its inner runner: no
    floats turned back into pixels. Any other model gets the contract's float32 CHW.
    predict and bench's camera end to end prepare alike."""
    from ftedge.data.frames import frame_image, is_frame, preprocess_frame
    from ftedge.data.transforms import decode_image, preprocess_image
    from ftedge.deploy.templates.preprocess import model_input
    from ftedge.runtime import PixelInputRunner

    if isinstance(runner, PixelInputRunner):
        def pixels(x):  # the kit's model_input: the pixels the floats were computed from
            img = frame_image(x) if is_frame(x) else decode_image(x, contract)
            return model_input(img, contract, input_format=runner.input_format,
                               layout=runner.layout)
        return pixels, runner.inner

    def floats(x):
        return preprocess_frame(x, contract) if is_frame(x) else preprocess_image(x, contract)[0]
    return floats, runner
