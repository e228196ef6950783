"""An artifact's model card (model_card.md): its facts gathered, written by export, and its
latency section refreshed by bench (both stages call it; stages never import each other).

The card is one of the artifact folder's files that ftedge owns (listed in its marker, so
--force refuses to replace a card the user edited), but it is not in the manifest's hashed
files: it is documentation, not something a runtime loads, and bench rewrites its latency
section after each measurement. bench does so only while the card is exactly as ftedge last
wrote it (the marker's sha256); a card the user edited is left alone, and bench says so.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ftedge.formats.owned import rewrite_owned_file
from ftedge.errors import DatasetError
from ftedge.formats.run import SPLIT, SPLITS, check_split, data_root
from ftedge.io import atomic_write_text, read_json, sha256_file
from ftedge.render.card import (CARD, latency_from_report, latency_section, render_model_card,
                                splice_latency)
from ftedge.runtime.kit import vnni_caveat

COVERS = (f"sha256 over every image of {SPLIT} in its order: its path, class and the "
          "sha256 of its bytes")
_DATA_CACHE: dict = {}  # one export command writing several cards hashes the images once


def data_facts(run: Path) -> dict | None:
    """Counts per class and split, the split's recipe and a digest of the data's content;
    None when the run's split or its images are not here."""
    path = run / SPLIT
    if not path.is_file():
        return None
    record = check_split(read_json(path), str(path))
    key = (str(path.resolve()), sha256_file(path))
    if key not in _DATA_CACHE:
        try:
            root = data_root(record, run)
        except DatasetError:  # the images moved: the counts still come from the record
            root = None
        classes = record["classes"]
        counts = {s: ([sum(1 for _, c in record[s] if c == k) for k in classes]
                      if record.get(s) is not None else None) for s in SPLITS}
        digest = None
        if root is not None:
            h = hashlib.sha256()
            for s in SPLITS:
                for rel, cls in record.get(s) or []:
                    file = root / rel
                    h.update(f"{s}\0{rel}\0{cls}\0".encode())
                    h.update(sha256_file(file).encode() if file.is_file() else b"missing")
            digest = h.hexdigest()
        _DATA_CACHE[key] = {"counts": counts, "sha256": digest or "n/a (the images are not "
                            "on this machine)", "covers": COVERS,
                            "split": {k: record.get(k) for k in ("source", "val_fraction",
                                                                  "seed", "root")}}
    return _DATA_CACHE[key]


def card_facts(folder: Path, manifest: dict, *, metrics: dict | None = None,
               latency: dict | None = None) -> dict:
    """What `render_model_card` needs, from the sealed manifest and the run beside it."""
    run = Path(manifest["source"]["run"])
    data = data_facts(run) if run.is_dir() else None
    return {"manifest": manifest, "folder": str(folder), "data": data, "metrics": metrics,
            "latency": latency, "vnni": vnni_caveat(manifest["runtime"], manifest["extra"])}


def artifact_metrics(logits, labels, classes: list[str], *, of: str) -> dict:
    """Per-class precision/recall/F1 of the artifact's own val logits."""
    from ftedge.metrics import classification_report

    rep = classification_report(logits, labels, classes)
    return {"n": rep["n"], "top1": rep["top1"], "per_class": rep["per_class"], "of": of}


def write_model_card(staged: Path, manifest: dict, metrics: dict | None = None, *,
                     final: Path | None = None) -> Path:
    """model_card.md in an artifact folder being exported: written into its `staged` folder,
    naming the `final` one (where it will be) in its commands."""
    facts = card_facts(final or staged, manifest, metrics=metrics)
    return atomic_write_text(staged / CARD, render_model_card(facts))


def refresh_latency(folder: Path, report: dict, row: dict, *, report_path: Path) -> str:
    """Put one bench row's latency into the artifact's card: "updated", or why not
    ("no card", "edited": the user changed it, so it is theirs, "no latency")."""
    card = folder / CARD
    if not card.is_file():
        return "no card"
    if not row.get("latency"):
        return "no latency"
    text = splice_latency(card.read_text(encoding="utf-8"), latency_section(
        latency_from_report(report, row, str(report_path))))
    if text is None or not rewrite_owned_file(folder, CARD, text):
        return "edited"
    return "updated"


def refresh_cards(report: dict, report_path: Path, log=print) -> None:
    """After a bench: each benched artifact's card gets this machine's latency, citing the
    report file that holds every number."""
    for row in report["artifacts"]:
        if row.get("status") == "error":
            continue
        folder = Path(row["artifact"])
        try:
            outcome = refresh_latency(folder, report, row, report_path=report_path)
        except OSError as e:  # a read-only copy: the bench report still holds the numbers
            log(f"model card of {folder} not updated ({e.strerror})")
            continue
        if outcome == "edited":
            log(f"{folder / CARD} was edited after ftedge wrote it: its latency section was "
                "left as it is (the bench report has the numbers)")

