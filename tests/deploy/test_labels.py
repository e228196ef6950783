"""Label files keep one class per line whatever the names hold, and parse back exactly."""

from __future__ import annotations

import pytest

from ftedge.deploy.common import DeployError
from ftedge.deploy.labels import (deepstream_labels_text, escape_label, labels_text,
                                  parse_deepstream_labels, parse_labels, unescape_label)
from tests.deploy.conftest import CLASSES

ODD = [*CLASSES, "tab\there", "cr\rlf\r\n", "\\n literally", "x\\u0041y", "form\x0cfeed",
       "nel\x85", "line\u2028sep", "semi;colon;", " spaced ", "emoji 🐈", "\\"]


def test_labels_round_trip_and_stay_one_per_line():
    text = labels_text(ODD)
    assert text.count("\n") == len(ODD) and len(text.splitlines()) == len(ODD)
    assert parse_labels(text) == ODD
    assert text.splitlines()[1] == "dog;wolf"  # only DeepStream's file escapes ';'


def test_deepstream_labels_are_one_line_split_by_semicolons():
    text = deepstream_labels_text(ODD)
    assert len(text.splitlines()) == 1
    assert len(text.rstrip("\n").split(";")) == len(ODD)
    assert parse_deepstream_labels(text) == ODD


@pytest.mark.parametrize("name", ODD)
def test_escape_is_reversible(name):
    assert unescape_label(escape_label(name, also=";")) == name
    assert "\n" not in escape_label(name) and "\r" not in escape_label(name)


def test_bad_escapes_and_bad_class_lists_are_refused():
    with pytest.raises(ValueError, match="bad escape"):
        unescape_label("a\\tb")
    with pytest.raises(ValueError, match="bad escape"):
        unescape_label("a\\u12")
    with pytest.raises(DeployError):
        labels_text(["a", "a"])
    with pytest.raises(DeployError):
        labels_text(["a", ""])
