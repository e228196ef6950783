"""deploy/templates/labels.py: one class name per line, and back, exactly."""

import pytest

from ftedge.deploy.templates.labels import escape_label, unescape_label

NAMES = ["cat", "dog;wolf", "back\\slash", "two\nlines", "cr\rhere", "para\u2029graph",
         "ünï cödé ✓", "\\n literally", "form\x0cfeed", ""]


@pytest.mark.parametrize("name", NAMES)
def test_every_name_comes_back_and_stays_on_one_line(name):
    line = escape_label(name, also=";")
    assert len(line.splitlines()) <= 1 and ";" not in line
    assert unescape_label(line) == name


def test_the_escapes_written():
    assert escape_label("a\\b\nc\rd") == "a\\\\b\\nc\\rd"
    assert escape_label("x\u2028y") == "x\\u2028y" and escape_label("a;b") == "a;b"
    assert escape_label("a;b", also=";") == "a\\u003bb"
    assert escape_label("ünï ✓") == "ünï ✓"  # printable non-ASCII is kept as is


@pytest.mark.parametrize("bad", ["a\\", "a\\t", "a\\u12", "a\\u12G4", "a\\U0041"])
def test_a_sequence_never_written_is_refused(bad):
    with pytest.raises(ValueError, match="bad escape"):
        unescape_label(bad)
