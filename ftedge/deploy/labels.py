"""The kit's label files: labels.txt (one class per line) and DeepStream's (one line, ';').

Both escape class names the same way (templates/labels.py documents the rule), so no class is
ever dropped or merged and every file parses back to the manifest's class list.
"""

from __future__ import annotations

from ftedge.deploy.common import DeployError
from ftedge.deploy.templates.labels import escape_label, unescape_label
from ftedge.errors import FtedgeError
from ftedge.formats.checkpoint import check_classes as check_class_list

__all__ = ["escape_label", "unescape_label", "labels_text", "parse_labels",
           "deepstream_labels_text", "parse_deepstream_labels", "check_classes"]


def check_classes(classes) -> list[str]:
    """The manifest's classes, by the artifact format's own rule (formats/checkpoint.py)."""
    try:
        return check_class_list(classes, "the manifest")
    except FtedgeError as e:
        raise DeployError(e.message, "export the artifact again from its run") from None


def labels_text(classes: list[str]) -> str:
    """labels.txt: line i is class i (the output's index i), escaped, '\\n'-terminated."""
    return "".join(escape_label(c) + "\n" for c in check_classes(classes))


def parse_labels(text: str) -> list[str]:
    """labels.txt -> class names (ValueError on a malformed file)."""
    if not text.endswith("\n"):
        raise ValueError("a labels file ends with a newline")
    return [unescape_label(line) for line in text[:-1].split("\n")]


def deepstream_labels_text(classes: list[str]) -> str:
    """DeepStream's classifier label file: one line per output layer, names split by ';'.

    nvinfer (InferPostprocessor::parseLabelsFile) splits each line on ';' with no escaping,
    so a ';' inside a name is written as \\u003b, the same escape labels.txt uses.
    """
    return ";".join(escape_label(c, also=";") for c in check_classes(classes)) + "\n"


def parse_deepstream_labels(text: str) -> list[str]:
    """The inverse of deepstream_labels_text."""
    if not text.endswith("\n") or "\n" in text[:-1]:
        raise ValueError("a one-output classifier's DeepStream label file is one line")
    return [unescape_label(x) for x in text[:-1].split(";")]
