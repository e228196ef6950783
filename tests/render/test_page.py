"""The run page renderer: sections in order, every user string escaped, images capped."""

import re

from ftedge.render.page import (GENERATOR, MAX_TILES, Figure, Missing, Pairs, Section, Table,
                                Text, Tile, Tiles, is_ftedge_page, render_page)
from ftedge.render.thumbs import data_uri, thumbnail_uri

EVIL = '<script>alert("x")</script>&"\''


def test_sections_render_in_order_with_missing_ones_said_plainly():
    sections = [Section("errors", "Worst errors", [Text("2 of 9 wrong")]),
                Section("unknown", "Unknowns", [Missing("an unknown score",
                                                        "ftedge eval RUN --unknown DIR")])]
    page = render_page("run", [("val images", "9")], sections)
    assert page.index('id="errors"') < page.index('id="unknown"')
    assert ("<b>Missing:</b> an unknown score. Produce it with <code>ftedge eval RUN "
            "--unknown DIR</code>") in page
    assert '<a href="#unknown" class="gap">Unknowns</a>' in page  # marked in the contents
    assert '<a href="#errors">Worst errors</a>' in page
    assert not sections[1].complete and sections[0].complete
    assert f'<meta name="generator" content="{GENERATOR}">' in page
    assert is_ftedge_page(page.encode()[:4096]) and not is_ftedge_page(b"<html>mine</html>")


def test_every_user_string_is_escaped():
    tile = Tile("data:image/jpeg;base64,AAAA", [f"true: {EVIL}"], title=f"/d/{EVIL}.png")
    page = render_page(EVIL, [(EVIL, EVIL)], [Section(EVIL, EVIL, [
        Text(EVIL), Missing(EVIL, EVIL), Tiles([tile]), Pairs([(tile, tile, EVIL)]),
        Table([EVIL], [[EVIL]]), Figure("data:image/png;base64,AAAA", EVIL)])])
    assert "<script>alert" not in page and "alert(&quot;x&quot;)" in page
    # the only scripts are the page's own
    assert len(re.findall(r"<script>", page)) == 1
    assert '"/d/&lt;script&gt;' in page and "&#x27;" in page


def test_tiles_are_capped_and_say_how_many_exist():
    tiles = [Tile(None, [str(i)]) for i in range(40)]
    page = render_page("t", [], [Section("s", "S", [Tiles(tiles, total=130)])])
    assert page.count('<div class="tile"') == MAX_TILES
    assert f"{MAX_TILES} of 130 images shown" in page
    assert page.count("unreadable") == MAX_TILES  # a file that cannot be read says so


def test_thumbnails_are_small_jpegs(tmp_path):
    from PIL import Image
    import base64
    import io

    Image.new("RGB", (640, 480), (200, 30, 30)).save(tmp_path / "big.png")
    uri = thumbnail_uri(tmp_path / "big.png")
    assert uri.startswith("data:image/jpeg;base64,")
    img = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert img.size == (96, 72) and img.format == "JPEG"
    assert len(uri) < 4000
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    assert thumbnail_uri(tmp_path / "broken.jpg") is None
    assert thumbnail_uri(tmp_path / "gone.jpg") is None
    assert data_uri(b"ab", "image/png") == "data:image/png;base64,YWI="
