"""The run page: one self-contained HTML document (no external CSS, JS, fonts or images).

A page is a title, a few facts and a list of sections; a section is a list of blocks
(text, a "missing" note with the command that produces it, thumbnails, pairs of
thumbnails, a table, a figure). `render_page` turns them into HTML, escaping every string
with html.escape: class names and file names come from the user's folders. Images are data
URIs made by render/thumbs.py. A small inline script records, once the page has loaded,
how many images decoded (`data-images-loaded` / `data-images-total` on <body>), so a
headless browser can tell a page that renders from one that only parses.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

GENERATOR = "ftedge report --html"  # <meta name="generator">: marks a page ftedge wrote
MAX_TILES = 24  # per section: keeps a page to a few MB at most


@dataclass
class Text:
    text: str


@dataclass
class Missing:
    what: str
    command: str


@dataclass
class Tile:
    uri: str | None  # thumbnail data URI; None: the file could not be read
    lines: list[str]  # caption, one line each
    title: str = ""  # tooltip (the file's path)
    tone: str = ""  # "bad" / "good" / "": a coloured frame


@dataclass
class Tiles:
    tiles: list[Tile]
    total: int | None = None  # how many there are in all, when only some are shown


@dataclass
class Pairs:
    pairs: list[tuple[Tile, Tile, str]]  # two images and what links them
    total: int | None = None


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Figure:
    uri: str
    alt: str


Block = Text | Missing | Tiles | Pairs | Table | Figure


@dataclass
class Section:
    id: str
    title: str
    blocks: list = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not any(isinstance(b, Missing) for b in self.blocks)


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:1150px;padding:16px 24px;color:#1d2329;background:#fff}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin:1.6em 0 .4em;
border-bottom:1px solid #d0d7de;padding-bottom:.2em}
.facts{color:#444;margin:.2em 0 .8em;display:flex;flex-wrap:wrap;gap:2px 1.4em}
.facts span{white-space:nowrap}
nav a{margin-right:1em;font-size:.9em}nav a.gap{color:#9a6700}nav a.gap::after{content:" (missing)"}
.missing{background:#fff8c5;border:1px solid #d4a72c;padding:6px 10px;border-radius:4px;
margin:.5em 0}code{background:#f0f2f4;padding:1px 4px;border-radius:3px;font-size:.9em}
.tiles{display:flex;flex-wrap:wrap;gap:8px}.tile{width:132px;font-size:11px;line-height:1.25;
border:2px solid #d0d7de;border-radius:4px;padding:4px;text-align:center;overflow-wrap:anywhere}
.tile.bad{border-color:#cf222e}.tile.good{border-color:#1a7f37}
.tile img{width:96px;height:96px;object-fit:contain;display:block;margin:0 auto 3px;
background:#f6f8fa}.noimg{width:96px;height:96px;margin:0 auto 3px;background:#eee;
display:flex;align-items:center;justify-content:center;color:#888}
.pair{display:flex;gap:4px;align-items:center;border:1px solid #d0d7de;border-radius:4px;
padding:4px}.pair .tile{border:none}.pair.bad{border:2px solid #cf222e}
.pair .why{font-size:11px;width:70px;text-align:center}
table{border-collapse:collapse;font-size:13px;margin:.4em 0}th,td{border:1px solid #d0d7de;
padding:3px 8px}th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
.shown{color:#555;font-size:.9em}
figure{margin:.4em 1% .4em 0;display:inline-block;width:48%;vertical-align:top}
figure img{width:100%}
"""

# Runs after load: how many <img> decoded. A headless browser reads it back from the DOM.
_SCRIPT = """
window.addEventListener("load",function(){var im=document.images,ok=0;
for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0)ok++;}
document.body.setAttribute("data-images-loaded",String(ok));
document.body.setAttribute("data-images-total",String(im.length));});
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _tile(t: Tile) -> str:
    img = (f'<img src="{_e(t.uri)}" alt="{_e(t.title)}" width="96" height="96">' if t.uri
           else '<div class="noimg">unreadable</div>')
    caption = "<br>".join(_e(line) for line in t.lines)
    tone = f" {t.tone}" if t.tone in ("bad", "good") else ""
    return f'<div class="tile{tone}" title="{_e(t.title)}">{img}{caption}</div>'


def _shown(n: int, total: int | None, what: str) -> str:
    if total is None or total <= n:
        return ""
    return f'<p class="shown">{n} of {total} {_e(what)} shown (the first by the order above).</p>'


def _block(b) -> str:
    if isinstance(b, Text):
        return f"<p>{_e(b.text)}</p>"
    if isinstance(b, Missing):
        return (f'<p class="missing"><b>Missing:</b> {_e(b.what)}. Produce it with '
                f"<code>{_e(b.command)}</code></p>")
    if isinstance(b, Tiles):
        tiles = b.tiles[:MAX_TILES]
        return (f'<div class="tiles">{"".join(_tile(t) for t in tiles)}</div>'
                + _shown(len(tiles), b.total or len(b.tiles), "images"))
    if isinstance(b, Pairs):
        pairs = b.pairs[:MAX_TILES // 2]
        body = "".join(f'<div class="pair{" bad" if "bad" in (a.tone, c.tone) else ""}">'
                       f'{_tile(a)}<div class="why">{_e(why)}</div>{_tile(c)}</div>'
                       for a, c, why in pairs)
        return (f'<div class="tiles">{body}</div>'
                + _shown(len(pairs), b.total or len(b.pairs), "pairs"))
    if isinstance(b, Table):
        head = "".join(f"<th>{_e(h)}</th>" for h in b.header)
        rows = "".join("<tr>" + "".join(
            f'<td class="n">{_e(c)}</td>' if _numeric(c) else f"<td>{_e(c)}</td>" for c in row)
            + "</tr>" for row in b.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    if isinstance(b, Figure):
        return f'<figure><img src="{_e(b.uri)}" alt="{_e(b.alt)}"></figure>'
    raise TypeError(f"not a page block: {type(b).__name__}")


def _numeric(cell) -> bool:
    try:
        float(str(cell).rstrip("%"))
        return True
    except ValueError:
        return False


def render_page(title: str, facts: list[tuple[str, str]], sections: list[Section]) -> str:
    """The whole page as one HTML string: a header with `facts` (label, value), a table of
    contents (missing sections marked) and every section in order."""
    gap = ' class="gap"'  # a section with something missing, marked in the contents
    nav = " ".join(f'<a href="#{_e(s.id)}"{"" if s.complete else gap}>{_e(s.title)}</a>'
                   for s in sections)
    fact_html = "".join(f"<span><b>{_e(k)}:</b> {_e(v)}</span>" for k, v in facts)
    body = "".join(f'<section id="{_e(s.id)}"><h2>{_e(s.title)}</h2>'
                   + "".join(_block(b) for b in s.blocks) + "</section>" for s in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta name="generator" content="{_e(GENERATOR)}">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_CSS}</style><script>{_SCRIPT}</script>"
            f'</head><body><h1>{_e(title)}</h1><div class="facts">{fact_html}</div>'
            f"<nav>{nav}</nav>{body}</body></html>\n")


def is_ftedge_page(head: bytes) -> bool:
    """True when a file's first bytes carry the generator mark of a page ftedge wrote."""
    return f'<meta name="generator" content="{_e(GENERATOR)}">'.encode() in head
