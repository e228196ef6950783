"""What the stages share, and the only module one stage may import from another's: which
images a model is judged on (eval, predict and bench alike). Anything else a stage needs from
another comes from disk (the run folder, the artifact folder) or from a library below."""

from __future__ import annotations

from pathlib import Path

from ftedge.data.audit import audit_dataset
from ftedge.data.folder import Sample
from ftedge.errors import DatasetError, RunError
from ftedge.formats.run import SPLIT, RunFolder
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
