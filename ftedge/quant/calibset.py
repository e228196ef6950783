"""Calibration sets: a recipe (YAML in calibration/) picks images; a manifest records them."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from ftedge.config import MAX_SEED, from_dict, load_yaml
from ftedge.errors import ConfigError, DatasetError
from ftedge.io import sha256_file

MIN_IMAGES = 100  # below this, activation ranges rest on too few samples


def _recipe_dir() -> Path:
    """calibration/ of the repository, installed as the package ftedge.recipes (setup.py)."""
    from importlib import resources

    return Path(str(resources.files("ftedge.recipes")))


@dataclass(frozen=True)
class CalibRecipe:
    """How to pick calibration images from a run's training split."""

    images: int = 256
    strategy: str = "stratified"  # stratified (equal share per class) or random
    split: str = "train"  # never val: the gate must judge on images calibration never saw
    seed: int = 0


def load_recipe(spec: str) -> tuple[CalibRecipe, str]:
    """A recipe from a YAML path or a name in calibration/ (e.g. 'stratified-256')."""
    path = Path(spec)
    if not path.is_file():
        path = _recipe_dir() / f"{spec}.yaml"
        if not path.is_file():
            names = sorted(p.stem for p in _recipe_dir().glob("*.yaml"))
            raise ConfigError(f"calibration recipe {spec!r} not found",
                              f"pass a YAML file or one of: {', '.join(names) or '(none)'}")
    recipe = from_dict(CalibRecipe, load_yaml(path), f"recipe {path.name}")
    if recipe.strategy not in ("stratified", "random") or recipe.split != "train":
        raise ConfigError(f"recipe {path}: strategy must be stratified or random, split train")
    if not 1 <= recipe.images <= 1_000_000:
        raise ConfigError(f"recipe {path}: images must be in 1..1000000")
    if not 0 <= recipe.seed <= MAX_SEED:
        raise ConfigError(f"recipe {path}: seed must be in 0..{MAX_SEED}")
    return recipe, str(path)


def pick(samples: list[tuple[str, str]], recipe: CalibRecipe) -> list[tuple[str, str]]:
    """Choose (relative path, class) rows; stratified takes turns over classes."""
    rng = random.Random(recipe.seed)
    rows = sorted(samples)
    if recipe.strategy == "random":
        rng.shuffle(rows)
        return sorted(rows[: recipe.images])
    by_class: dict[str, list] = {}
    for row in rows:
        by_class.setdefault(row[1], []).append(row)
    for v in by_class.values():
        rng.shuffle(v)
    chosen: list = []
    while len(chosen) < recipe.images and any(by_class.values()):
        for c in sorted(by_class):
            if by_class[c] and len(chosen) < recipe.images:
                chosen.append(by_class[c].pop())
    return sorted(chosen)


def build_manifest(split_record: dict, recipe: CalibRecipe, recipe_path: str) -> dict:
    """The manifest: recipe, files with sha256, class coverage, warnings, and its own hash."""
    root = Path(split_record["root"])
    rows = pick([tuple(r) for r in split_record.get(recipe.split) or []], recipe)
    gone = [rel for rel, _ in rows if not (root / rel).is_file()]
    if gone:
        raise DatasetError(f"{len(gone)} calibration image(s) are gone from {root}, e.g. {gone[0]}",
                           "restore the run's images, or start a new run")
    files = [{"path": rel, "class": c, "sha256": sha256_file(root / rel)} for rel, c in rows]
    digest = hashlib.sha256(json.dumps([[f["path"], f["sha256"]] for f in files]).encode())
    missing = sorted(set(split_record["classes"]) - {f["class"] for f in files})
    warnings = []
    if len(files) < MIN_IMAGES:
        warnings.append(f"only {len(files)} calibration images (fewer than {MIN_IMAGES}): "
                        "activation ranges may not represent the data; use more images")
    if missing:
        warnings.append(f"calibration set has no image of class(es) {', '.join(missing)}: "
                        "their activations are not represented")
    return {"recipe": recipe.__dict__, "recipe_file": recipe_path, "root": str(root),
            "files": files, "sha256": digest.hexdigest(), "classes_missing": missing,
            "warnings": warnings}
