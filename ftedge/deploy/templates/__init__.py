"""Pieces of the standalone deploy/infer.py, one runtime-free copy each.

Every piece is an importable module (so tests and ftedge can call it) whose text below the
BODY_MARKER line is copied verbatim into each generated infer.py. Nothing in a piece's body may
import ftedge or torch: the script runs on devices that have neither. What a piece imports
from a sibling piece sits above the marker, for importability only.
"""

BODY_MARKER = "# ---- ftedge template body ----"
