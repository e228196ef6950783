"""The audit's findings as text the stages print (stages/common/audit_view.py): what a leak
warning and the tiny-image note say."""

from __future__ import annotations


SHOW = 20  # rows of each list printed; --json has them all


def rel(audit, path) -> str:
    """`path` relative to the audit's root where it lies below it."""
    try:
        return str(path.relative_to(audit.root))
    except ValueError:
        return str(path)


def leak_warning(audit) -> str | None:
    """One line for every split that shows pictures of train, or None."""
    parts = [f"{len(audit.leaked(s))} {s} image(s)" for s in ("val", "test") if audit.leaked(s)]
    if not parts:
        return None
    return (f"{' and '.join(parts)} also appear in train (identical or near-duplicate): "
            "their scores measure memory, not generalisation")


def small_image_note(audit) -> str | None:
    """One line when images were too small for the near-duplicate search, or None."""
    if not audit.too_small_to_hash or audit.duplicates is None:
        return None
    from ftedge.data.duplicates import MIN_HASH_SIDE

    n, total = audit.too_small_to_hash, len(audit.sizes)
    return (f"near-duplicates not searched among {'all ' if n == total else ''}{n} image(s) "
            f"under {MIN_HASH_SIDE} px on the short side (too small for a perceptual hash to "
            "tell a copy from a look-alike); identical files are still found")
