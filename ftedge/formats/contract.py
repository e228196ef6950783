"""The preprocessing contract: what a caller must do to an image before the model sees it.

A contract is a plain dict (stored in the run's preprocessing.json, every checkpoint, every
artifact manifest and the ONNX metadata). Contracts written before geometry, filter and decode
were named lack those keys: they read as what that code did (`crop`, the recorded
interpolation, antialiased, full decode; a draft decode without `draft_margin`: 2.0), so an
old run or artifact keeps meaning what it meant.
"""

from __future__ import annotations

from ftedge.config import (DECODES, DEFAULT_DECODE, DEFAULT_GEOMETRY, DEFAULT_PAD_VALUE,
                           DRAFT_MARGIN, FILTERS, GEOMETRIES, MAX_DRAFT_MARGIN, MIN_DRAFT_MARGIN,
                           MIN_REDUCING_GAP)
from ftedge.errors import RunError

REQUIRED = ("input_size", "resize", "interpolation", "mean", "std")
# What a contract written before these keys existed meant; `antialias` follows the filter.
LEGACY = {"geometry": "crop", "decode": "full", "pad_value": list(DEFAULT_PAD_VALUE),
          "reducing_gap": None}
FIXED = {"scale": "1/255", "crop": "center", "channel_order": "RGB", "layout": "NCHW"}
_REMAKE = "re-create it with the ftedge command that wrote it"


def antialias_of(interpolation: str) -> bool:
    """Pillow's bilinear and bicubic widen their support when shrinking (antialias); nearest
    never does. The contract records it because other resizers (nvinfer's) do not."""
    return interpolation != "nearest"


def resize_allowed(interpolation: str, antialias: bool) -> bool:
    """Pillow's filters as they are, and bilinear without antialiasing (nvinfer's
    scaling-filter=1: deploy/templates/preprocess.py `resize_bilinear`)."""
    return antialias == antialias_of(interpolation) or (interpolation == "bilinear"
                                                        and not antialias)


def build_contract(*, input_size: int, resize: int, interpolation: str, mean, std,
                   background=(255, 255, 255), geometry: str = DEFAULT_GEOMETRY,
                   pad_value=DEFAULT_PAD_VALUE, decode: str = DEFAULT_DECODE,
                   antialias: bool | None = None, reducing_gap: float | None = None,
                   draft_margin: float | None = None) -> dict:
    """A complete contract; `resize` is the short side before the centre crop (crop only);
    `antialias` None is the filter's own (Pillow's), False with bilinear is plain bilinear;
    `reducing_gap` None resizes from the whole image, a number box-reduces first (Pillow's
    resize(reducing_gap=...), config.MIN_REDUCING_GAP); `draft_margin` (decode draft only;
    None: config.DRAFT_MARGIN) is how many times the resize's size a draft decode keeps."""
    if draft_margin is not None and decode != "draft":
        raise ValueError("draft_margin applies to decode 'draft' only")
    contract = {
        "input_size": [3, int(input_size), int(input_size)],
        "geometry": geometry,
        "resize": int(resize) if geometry == "crop" else int(input_size),
        "crop": "center",
        "interpolation": interpolation,
        "antialias": antialias_of(interpolation) if antialias is None else bool(antialias),
        "pad_value": [int(v) for v in pad_value],
        "decode": decode,
        "draft_margin": (float(DRAFT_MARGIN if draft_margin is None else draft_margin)
                         if decode == "draft" else None),
        "reducing_gap": None if reducing_gap is None else float(reducing_gap),
        "scale": "1/255",
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "channel_order": "RGB",
        "layout": "NCHW",
        "background": [int(v) for v in background],
    }
    return check_contract(contract, "the new preprocessing contract")


def _bad(where: str, what: str) -> RunError:
    return RunError(f"{where}: {what}", _REMAKE)


def _rgb(value) -> bool:
    return (isinstance(value, list) and len(value) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255
                    for v in value))


def check_contract(contract, where: str) -> dict:
    """Validate a contract and fill in what older versions left implicit (in place).

    Raises:
        RunError: a key is missing, malformed, or names something this version cannot apply.
    """
    if not isinstance(contract, dict) or any(k not in contract for k in REQUIRED):
        raise _bad(where, "the preprocessing contract is missing or incomplete "
                          f"(needs {', '.join(REQUIRED)})")
    for key, value in LEGACY.items():
        contract.setdefault(key, list(value) if isinstance(value, list) else value)
    if contract["interpolation"] in FILTERS:
        contract.setdefault("antialias", antialias_of(contract["interpolation"]))
    size = contract["input_size"]
    if (not isinstance(size, list) or len(size) != 3 or size[0] != 3
            or not all(isinstance(v, int) and v > 0 for v in size)):
        raise _bad(where, f"input_size {size!r} is not [3, H, W]")
    for key in ("mean", "std"):
        v = contract[key]
        if (not isinstance(v, list) or len(v) != 3
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
                or (key == "std" and min(v) <= 0)):
            raise _bad(where, f"{key} {v!r} is not three numbers" + (" above 0" if key == "std"
                                                                      else ""))
    for key, allowed in (("geometry", GEOMETRIES), ("interpolation", FILTERS),
                         ("decode", DECODES)):
        if contract[key] not in allowed:
            raise _bad(where, f"{key} {contract[key]!r} is not one of {', '.join(allowed)} "
                              "(written by a newer ftedge?)")
    if (not isinstance(contract["antialias"], bool)
            or not resize_allowed(contract["interpolation"], contract["antialias"])):
        raise _bad(where, f"antialias={contract['antialias']!r} with {contract['interpolation']}"
                          " is not a resize this version can apply (Pillow's filters, or "
                          "bilinear with antialias false)")
    _check_draft_margin(contract, where)
    gap = contract["reducing_gap"]
    if gap is not None and (isinstance(gap, bool) or not isinstance(gap, (int, float))
                            or not gap >= MIN_REDUCING_GAP or gap == float("inf")):
        raise _bad(where, f"reducing_gap {gap!r} is not null or a number >= "
                          f"{MIN_REDUCING_GAP:g}")
    if gap is not None and (contract["interpolation"] == "nearest"
                            or not contract["antialias"]):
        raise _bad(where, f"reducing_gap with {contract['interpolation']} (antialias "
                          f"{contract['antialias']}): only Pillow's antialiased filters reduce "
                          "first (plain bilinear is nvinfer's scaler, which does not)")
    if not _rgb(contract["pad_value"]):
        raise _bad(where, f"pad_value {contract['pad_value']!r} is not an RGB colour 0..255")
    if not isinstance(contract["resize"], int) or contract["resize"] < 1:
        raise _bad(where, f"resize {contract['resize']!r} is not a positive integer")
    for key, want in FIXED.items():
        if contract.get(key, want) != want:
            raise _bad(where, f"{key}={contract[key]!r} is not supported (only {want!r})")
    return contract


def _check_draft_margin(contract: dict, where: str) -> None:
    """A draft contract written before the key meant DRAFT_MARGIN; a full decode has none."""
    draft = contract["decode"] == "draft"
    contract.setdefault("draft_margin", DRAFT_MARGIN if draft else None)
    margin = contract["draft_margin"]
    if not draft:
        if margin is not None:
            raise _bad(where, f"draft_margin {margin!r} with decode {contract['decode']!r}: a "
                              "margin belongs to a draft decode only")
        return
    if (isinstance(margin, bool) or not isinstance(margin, (int, float))
            or not MIN_DRAFT_MARGIN <= margin <= MAX_DRAFT_MARGIN):
        raise _bad(where, f"draft_margin {margin!r} is not a number from {MIN_DRAFT_MARGIN:g} "
                          f"to {MAX_DRAFT_MARGIN:g}")


def describe(contract: dict) -> str:
    """One line for logs and warnings: 'stretch to 224x224, bilinear (antialiased)'."""
    h, w = contract["input_size"][1:]
    aa = contract.get("antialias", antialias_of(contract["interpolation"]))
    filt = contract["interpolation"] + (" (antialiased)" if aa else
                                        " (not antialiased)" if contract["interpolation"]
                                        == "bilinear" else "")
    geometry = contract.get("geometry", "crop")
    if geometry == "crop":
        shape = f"crop: short side to {contract['resize']}, centre {h}x{w}"
    elif geometry == "stretch":
        shape = f"stretch to {h}x{w}"
    else:
        shape = f"letterbox into {h}x{w}, pad {tuple(contract.get('pad_value', (0, 0, 0)))}"
    decode = ""
    if contract.get("decode") == "draft":
        margin = contract.get("draft_margin")
        margin = DRAFT_MARGIN if margin is None else margin
        decode = f", JPEG draft decode (>= {margin:g}x the resize)"
    if contract.get("reducing_gap") is not None:
        decode += f", box-reduced first (reducing gap {contract['reducing_gap']:g})"
    return f"{shape}, {filt}{decode}"
