import numpy as np
import pytest
from PIL import Image

from ftedge.data.images import ImageDecodeError, load_image


def test_grayscale_becomes_rgb(tmp_path):
    p = tmp_path / "g.png"
    Image.new("L", (5, 4), 77).save(p)
    img = load_image(p)
    assert img.mode == "RGB" and img.size == (5, 4)
    assert np.asarray(img)[0, 0].tolist() == [77, 77, 77]


def test_rgba_is_composited_onto_fixed_background(tmp_path):
    p = tmp_path / "a.png"
    arr = np.zeros((2, 2, 4), np.uint8)
    arr[0, 0] = (255, 0, 0, 255)  # opaque red
    arr[1, 1] = (0, 0, 255, 0)  # fully transparent blue
    Image.fromarray(arr, "RGBA").save(p)
    out = np.asarray(load_image(p, background=(10, 20, 30)))
    assert out[0, 0].tolist() == [255, 0, 0]
    assert out[1, 1].tolist() == [10, 20, 30]


def test_palette_with_transparency(tmp_path):
    p = tmp_path / "p.png"
    img = Image.new("P", (3, 3), 1)
    img.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    img.info["transparency"] = 0
    img.putpixel((0, 0), 0)
    img.save(p, transparency=0)
    out = np.asarray(load_image(p))
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[1, 1].tolist() == [200, 100, 50]


def test_cmyk_jpeg(tmp_path):
    p = tmp_path / "c.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(p)  # red in CMYK
    r, g, b = np.asarray(load_image(p))[4, 4].tolist()
    assert r > 200 and g < 60 and b < 60


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    p = tmp_path / "d.png"
    arr = np.array([[0, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(arr).save(p)  # stored as a true 16-bit PNG
    assert Image.open(p).mode.startswith("I")
    out = np.asarray(load_image(p))[0, :, 0].tolist()
    assert out == [0, 128, 255]


def test_exif_rotation_is_applied(tmp_path):
    p = tmp_path / "r.jpg"
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 20, 20))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(p, exif=exif, quality=95)
    out = load_image(p)
    assert out.size == (20, 40)
    arr = np.asarray(out).mean(2)
    assert arr[:20].mean() > 200 and arr[20:].mean() < 50  # white half is now on top


def test_non_ascii_path_with_spaces(tmp_path):
    d = tmp_path / "Café crème 猫"
    d.mkdir()
    p = d / "ünïcode name.webp"
    Image.new("RGB", (6, 6), (1, 2, 3)).save(p)
    assert load_image(p).size == (6, 6)


@pytest.mark.parametrize("kind,reason", [("empty", "empty file"), ("text", "not an image"),
                                         ("truncated", "corrupt or truncated")])
def test_bad_files_raise_with_reason(tmp_path, kind, reason):
    p = tmp_path / "bad.jpg"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "text":
        p.write_text("hello, not a picture")
    else:
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(p)
        p.write_bytes(p.read_bytes()[:600])
    with pytest.raises(ImageDecodeError, match=reason):
        load_image(p)


def test_a_folder_or_a_missing_path_is_named_as_such(tmp_path):
    with pytest.raises(ImageDecodeError, match="^not a file"):
        load_image(tmp_path)
    with pytest.raises(ImageDecodeError, match="^no such file$"):
        load_image(tmp_path / "missing.png")


def test_a_fifo_named_like_an_image_is_refused_not_waited_on(tmp_path):
    import os

    os.mkfifo(tmp_path / "camera.jpg")
    with pytest.raises(ImageDecodeError, match="not a regular file"):
        load_image(tmp_path / "camera.jpg")
