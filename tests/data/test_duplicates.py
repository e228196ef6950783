"""Duplicate, leak, label-conflict and outlier findings of the audit, on real sample photos
(scikit-image's) with planted copies."""

import io
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

from ftedge.data import audit_dataset
from ftedge.data.duplicates import fingerprint, near_pairs

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
          "immunohistochemistry", "retina", "camera", "moon", "coins", "page", "text", "horse",
          "grass", "gravel", "brick", "clock", "colorwheel", "cell", "microaneurysms")


def _photos() -> list[Image.Image]:
    data = pytest.importorskip("skimage.data")
    out = []
    for name in PHOTOS:
        img = Image.fromarray(getattr(data, name)()).convert("RGB")
        img.thumbnail((200, 200))
        out.append(img)
    return out


@pytest.fixture(scope="module")
def photos():
    return _photos()


def _jpeg(img: Image.Image, path, quality=90):
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG", quality=quality)


def _crop(img, keep=0.95, at=(1.0, 0.0)):
    w, h = img.size
    cw, ch = round(w * keep), round(h * keep)
    x, y = round(at[0] * (w - cw)), round(at[1] * (h - ch))
    return img.crop((x, y, x + cw, y + ch))


PLANTS = {  # name -> (what the copy is, the split it lands in)
    "exact": (None, "val"),
    "jpeg70": (lambda im: im, "val"),
    "half": (lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS),
             "test"),
    "crop5": (_crop, "test"),
    "mirror": (ImageOps.mirror, "val"),
}


@pytest.fixture
def planted(tmp_path, photos):
    """train/{a,b}: 10 distinct photos each; val/ and test/ hold one copy of each kind of
    train photos 0-4 (in their own class), and distinct photos of their own."""
    root = tmp_path / "set"
    for i, img in enumerate(photos):
        _jpeg(img, root / "train" / "ab"[i % 2] / f"p{i:02d}.jpg")
    for k, (name, (make, split)) in enumerate(PLANTS.items()):
        src = root / "train" / "ab"[k % 2] / f"p{k:02d}.jpg"
        dst = root / split / "ab"[k % 2] / f"{name}.jpg"
        dst.parent.mkdir(parents=True, exist_ok=True)
        if make is None:
            shutil.copyfile(src, dst)
        else:
            _jpeg(make(photos[k]), dst, quality=70 if name == "jpeg70" else 90)
    for split in ("val", "test"):  # a distinct picture of each class: a grey gradient pattern
        for j, c in enumerate("ab"):
            yy, xx = np.mgrid[0:120, 0:160]
            arr = ((np.sin(xx / (7 + 5 * j + (split == "test") * 3)) + yy / 120) * 100 + 60)
            _jpeg(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).convert("RGB"),
                  root / split / c / "own.jpg")
    return root


def test_every_planted_copy_is_found_and_nothing_else(planted):
    audit = audit_dataset(planted, duplicates=True)
    pairs = {(p.a.name, p.b.stem): p for p in audit.duplicates}
    expected = {(f"p{k:02d}.jpg", name) for k, name in enumerate(PLANTS)}
    assert set(pairs) == expected  # every kind caught; no two distinct photos paired
    assert pairs[("p00.jpg", "exact")].kind == "identical file"
    assert pairs[("p04.jpg", "mirror")].kind == "mirrored"
    assert all(p.leak and not p.conflict for p in pairs.values())
    assert {p.stem for p in audit.leaked("val")} == {"exact", "jpeg70", "mirror"}
    assert {p.stem for p in audit.leaked("test")} == {"half", "crop5"}
    d = audit.to_dict()
    assert len(d["duplicates"]) == 5 and len(d["leaks"]["val"]) == 3
    json.dumps(d)


def test_same_file_in_two_classes_is_a_label_conflict(tmp_path, photos):
    root = tmp_path / "set"
    for i, img in enumerate(photos[:8]):
        _jpeg(img, root / "a" / f"{i}.jpg")
    for i in range(3):
        (root / "b").mkdir(exist_ok=True)
        shutil.copyfile(root / "a" / f"{i}.jpg", root / "b" / f"copy{i}.jpg")
    audit = audit_dataset(root, duplicates=True)
    assert len(audit.duplicates) == 3
    assert all(p.conflict and p.kind == "identical file" and not p.leak
               for p in audit.duplicates)


def test_distinct_photos_are_never_paired_their_half_size_copies_are(photos):
    prints = []
    for img in photos:
        buf = io.BytesIO()
        img.save(buf, "PNG")
        prints.append(fingerprint(img, buf.getvalue()))
        small = img.resize((img.width // 2, img.height // 2))
        prints.append(fingerprint(small, b"small" + buf.getvalue()))
    found = {(i, j) for i, j, _, _ in near_pairs(prints)}
    copies = {(2 * k, 2 * k + 1) for k in range(len(photos))}
    assert found <= copies  # no two different photos paired
    # every photo pairs with its own half-size copy (a PNG: no JPEG draft) except a known
    # pHash weakness: a fine regular texture (brick) and a synthetic colour wheel, whose low
    # DCT coefficients sit near their median so a resize flips many bits
    weak = {PHOTOS.index("brick"), PHOTOS.index("colorwheel")}
    assert copies - found <= {(2 * k, 2 * k + 1) for k in weak}
    assert len(found) >= len(photos) - len(weak)


def test_audit_without_duplicates_stays_as_it_was(planted):
    audit = audit_dataset(planted)
    assert audit.duplicates is None and audit.outliers == []
    assert audit.to_dict()["duplicates"] is None and audit.leaked("val") == set()


def test_outliers_tiny_blank_and_extreme_aspect(tmp_path, photos):
    root = tmp_path / "set"
    for i, img in enumerate(photos[:6]):
        _jpeg(img, root / "a" / f"{i}.jpg")
        _jpeg(photos[6 + i], root / "b" / f"{i}.jpg")
    _jpeg(photos[12].resize((20, 20)), root / "a" / "tiny.jpg")
    Image.new("RGB", (150, 150), (90, 90, 90)).save(root / "b" / "blank.png")
    _jpeg(photos[13].resize((400, 60)), root / "b" / "strip.jpg")
    audit = audit_dataset(root, duplicates=True)
    why = {p.name: r for p, r in audit.outliers}
    assert set(why) == {"tiny.jpg", "blank.png", "strip.jpg"}
    assert "tiny" in why["tiny.jpg"] and "blank" in why["blank.png"]
    assert "aspect" in why["strip.jpg"]


def test_truncated_jpeg_still_unusable_with_draft_decode(planted):
    f = planted / "train" / "a" / "p10.jpg"
    f.write_bytes(f.read_bytes()[:2000])
    audit = audit_dataset(planted, duplicates=True)
    assert [p.name for p, _ in audit.unusable] == ["p10.jpg"]
    # the image sizes are the full ones, not the reduced decode's
    assert audit.size_summary()["max"][0] == 200


def test_data_check_reports_a_val_that_copies_train(tmp_path, photos):
    from ftedge.cli import cli

    root = tmp_path / "set"
    for i, img in enumerate(photos[:12]):
        _jpeg(img, root / "train" / "ab"[i % 2] / f"{i}.jpg")
    shutil.copytree(root / "train", root / "val")
    runner = CliRunner()
    res = runner.invoke(cli, ["data", "check", str(root)])
    assert res.exit_code == 0, res.output
    assert "12 val image(s) also appear in train" in res.output
    assert "12 duplicate pair(s): 12 identical file" in res.output
    res = runner.invoke(cli, ["data", "check", str(root), "--json"])
    d = json.loads(res.output)
    assert len(d["leaks"]["val"]) == 12 and d["leaks"]["test"] == []
    assert all(p["leak"] and not p["label_conflict"] for p in d["duplicates"])


def test_small_images_get_identical_copies_found_and_no_near_duplicate_guesses(tmp_path,
                                                                               photos):
    """Under MIN_HASH_SIDE px a perceptual hash cannot tell a copy from a look-alike: those
    images are left out of the near-duplicate search (said in one line), identical files
    are still paired, and an image at the threshold is searched as before."""
    from ftedge.data.audit_report import small_image_note
    from ftedge.data.duplicates import MIN_HASH_SIDE

    root = tmp_path / "set"
    (root / "train" / "a").mkdir(parents=True)
    for i, img in enumerate(photos[:4]):
        small = img.resize((MIN_HASH_SIDE - 1, MIN_HASH_SIDE - 1), Image.Resampling.LANCZOS)
        small.save(root / "train" / "a" / f"s{i}.png")
        _jpeg(small, root / "val" / "a" / f"s{i}.jpg", quality=70)  # a re-encode: not found
    shutil.copyfile(root / "train" / "a" / "s0.png", root / "val" / "a" / "same.png")
    at = photos[5].resize((MIN_HASH_SIDE, MIN_HASH_SIDE), Image.Resampling.LANCZOS)
    _jpeg(at, root / "train" / "b" / "at.jpg", quality=95)
    _jpeg(at, root / "val" / "b" / "at70.jpg", quality=70)  # at the threshold: found
    audit = audit_dataset(root, duplicates=True)
    pairs = {(p.a.name, p.b.name, p.kind) for p in audit.duplicates}
    assert pairs == {("s0.png", "same.png", "identical file"),
                     ("at.jpg", "at70.jpg", "near-duplicate")}
    assert audit.too_small_to_hash == 9
    d = audit.to_dict()["near_duplicates_not_searched"]
    assert d == {"images": 9, "short_side_below": MIN_HASH_SIDE}
    assert f"9 image(s) under {MIN_HASH_SIDE} px" in small_image_note(audit)
    assert small_image_note(audit_dataset(root)) is None  # no search, nothing to say


def test_the_digits_demo_is_not_called_full_of_near_duplicates(tmp_path, monkeypatch):
    """sklearn's 8x8 digits (the demo): without the size floor the hash pairs look-alike
    digits by the hundred; with it, only byte-identical files are reported."""
    from click.testing import CliRunner

    from ftedge.cli import cli
    from ftedge.data import duplicates
    from ftedge.data.demo import write_demo_data

    root = write_demo_data(tmp_path / "digits", train_per_class=50)
    audit = audit_dataset(root, duplicates=True)
    assert audit.too_small_to_hash == 1797
    assert all(p.kind == "identical file" for p in audit.duplicates)
    for p in audit.duplicates:  # identical bytes: the same 8x8 pixels
        assert p.a.read_bytes() == p.b.read_bytes()
    assert len(audit.leaked("val")) < 20
    monkeypatch.setattr(duplicates, "MIN_HASH_SIDE", 0)  # what the audit said before
    before = audit_dataset(root, duplicates=True)
    assert len(before.leaked("val")) > 10 * max(1, len(audit.leaked("val")))
    monkeypatch.undo()
    res = CliRunner().invoke(cli, ["data", "check", str(root)])
    assert res.exit_code == 0, res.output
    assert "near-duplicates not searched among all 1797 image(s) under 32 px" in res.output
