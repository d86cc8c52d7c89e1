"""The report as a list of blocks, and its two renderings: Markdown and self-contained HTML.

Building the report once as blocks (headings, paragraphs, tables, figures) and rendering it twice
keeps report.md and report.html saying the same thing. The HTML inlines every figure as a base64
PNG and its CSS, so it opens anywhere with no network; a small script records on ``load`` how many
images decoded and how many tables rendered in ``<pre id="render-check">`` (the rendering test
reads it back from headless Chromium).

>>> blocks = [Heading(1, "R"), Table(["a", "b"], [["1", "2"]])]
>>> "| a | b |" in to_markdown(blocks)
True
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass


@dataclass(frozen=True)
class Heading:
    """A section title; ``level`` 1 to 4. ``anchor`` is the HTML id (derived from text if empty)."""

    level: int
    text: str
    anchor: str = ""


@dataclass(frozen=True)
class Paragraph:
    """Plain text; ``**bold**`` and ``code`` spans are the only markup understood."""

    text: str
    css_class: str = ""


@dataclass(frozen=True)
class BulletList:
    """An unordered list of plain-text items."""

    items: list[str]


@dataclass(frozen=True)
class Table:
    """A table of already-formatted strings; ``numeric`` marks right-aligned columns by index,
    ``highlight`` rows to stand out (a shaded row in HTML, bold cells in Markdown)."""

    headers: list[str]
    rows: list[list[str]]
    caption: str = ""
    numeric: tuple[int, ...] = ()
    highlight: tuple[int, ...] = ()


@dataclass(frozen=True)
class Figure:
    """A PNG figure: ``png`` bytes, ``filename`` relative to the report folder, and a caption."""

    png: bytes
    filename: str
    caption: str


Block = Heading | Paragraph | BulletList | Table | Figure


def to_markdown(blocks: list[Block]) -> str:
    """Render blocks as GitHub-flavoured Markdown; figures link to their PNG files."""
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, BulletList):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            parts.append(_markdown_table(block))
        elif isinstance(block, Figure):
            alt = block.filename.rsplit("/", 1)[-1].removesuffix(".png")
            parts.append(f"![{alt}]({block.filename})\n\n*{block.caption}*")
    return "\n\n".join(parts) + "\n"


def _markdown_table(table: Table) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    align = ["---:" if i in table.numeric else ":---" for i in range(len(table.headers))]
    lines = [
        "| " + " | ".join(cell(h) for h in table.headers) + " |",
        "| " + " | ".join(align) + " |",
    ]
    lines += [
        "| " + " | ".join(f"**{cell(c)}**" if k in table.highlight else cell(c) for c in row) + " |"
        for k, row in enumerate(table.rows)
    ]
    if table.caption:
        lines.append(f"\n*{table.caption}*")
    return "\n".join(lines)


def _inline(text: str) -> str:
    # Escape first, then turn the two markup forms we use into tags.
    out = html.escape(text)
    pieces = out.split("`")
    out = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))
    pieces = out.split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(pieces))


def _anchor(heading: Heading) -> str:
    if heading.anchor:
        return heading.anchor
    return "".join(c if c.isalnum() else "-" for c in heading.text.lower()).strip("-")


def _html_block(block: Block) -> str:
    if isinstance(block, Heading):
        level = min(max(block.level, 1), 4)
        return f'<h{level} id="{_anchor(block)}">{_inline(block.text)}</h{level}>'
    if isinstance(block, Paragraph):
        cls = f' class="{block.css_class}"' if block.css_class else ""
        return f"<p{cls}>{_inline(block.text)}</p>"
    if isinstance(block, BulletList):
        return "<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, Table):
        return _html_table(block)
    data = base64.b64encode(block.png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(block.caption)}">'
        f"<figcaption>{_inline(block.caption)}</figcaption></figure>"
    )


def _html_table(table: Table) -> str:
    def cls(i: int) -> str:
        return ' class="num"' if i in table.numeric else ""

    head = "".join(f"<th{cls(i)}>{_inline(h)}</th>" for i, h in enumerate(table.headers))
    body = "".join(
        ('<tr class="highlight">' if k in table.highlight else "<tr>")
        + "".join(f"<td{cls(i)}>{_inline(c)}</td>" for i, c in enumerate(row))
        + "</tr>"
        for k, row in enumerate(table.rows)
    )
    caption = f"<caption>{_inline(table.caption)}</caption>" if table.caption else ""
    return (
        f'<div class="table-wrap"><table>{caption}<thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


_CSS = """
:root { --ink:#1d2733; --muted:#5b6776; --line:#d9dee5; --band:#f4f6f9; --accent:#1f5fa8; }
* { box-sizing: border-box; }
body { margin:0; background:#eef1f5; color:var(--ink);
  font:15px/1.55 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
main { max-width:1120px; margin:24px auto; background:#fff; padding:28px 44px 36px;
  border-radius:10px; box-shadow:0 1px 4px rgba(20,30,50,.12); }
h1 { font-size:28px; margin:0 0 4px; }
h2 { font-size:22px; margin:36px 0 8px; padding-top:14px; border-top:3px solid var(--accent); }
h3 { font-size:17px; margin:24px 0 6px; color:var(--accent); }
h4 { font-size:15px; margin:18px 0 4px; }
p.note { color:var(--muted); font-size:13.5px; }
code { background:var(--band); padding:1px 4px; border-radius:3px; font-size:13px; }
.table-wrap { overflow-x:auto; margin:10px 0 16px; }
table { border-collapse:collapse; font-size:13.5px; min-width:50%; }
caption { caption-side:bottom; text-align:left; color:var(--muted); font-size:12.5px;
  padding-top:6px; }
th, td { padding:5px 10px; border-bottom:1px solid var(--line); text-align:left;
  vertical-align:top; }
th { background:var(--band); border-bottom:2px solid #b9c2ce; }
td:first-child { white-space:nowrap; }
th.num { text-align:right; }
td.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
tbody tr:nth-child(even) td { background:#fafbfc; }
tbody tr.highlight td { background:#fff3d1; font-weight:600; border-bottom-color:#e0b84c; }
figure { margin:14px 0 22px; }
figure img { max-width:100%; height:auto; display:block; margin:0 auto;
  border:1px solid var(--line); border-radius:4px; }
figcaption { color:var(--muted); font-size:13px; margin-top:6px; }
ul { padding-left:22px; } li { margin:2px 0; }
footer { margin-top:32px; color:var(--muted); font-size:12px; border-top:1px solid var(--line); }
#render-check { font-size:11px; color:var(--muted); margin:4px 0 0; }
"""

_RENDER_CHECK = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var tables = document.querySelectorAll("table");
  var empty = Array.prototype.filter.call(tables, function (t) {
    return t.getBoundingClientRect().height <= 0 || t.rows.length < 2; }).length;
  var rows = document.querySelectorAll("table tbody tr").length;
  document.getElementById("render-check").textContent =
    "images_ok=" + ok + "/" + imgs.length + " tables=" + tables.length +
    " tables_empty=" + empty + " rows=" + rows;
});
"""


def to_html(blocks: list[Block], *, title: str) -> str:
    """Render blocks as one self-contained HTML page (inline CSS, base64 images, no URLs).

    Parameters
    ----------
    blocks
        The report content.
    title
        The page title (``<title>``).

    Returns
    -------
    str
        The complete HTML document.
    """
    body = "\n".join(_html_block(b) for b in blocks)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n"
        f"<body><main>\n{body}\n<footer><p>Generated by <code>lowdose report</code> from saved "
        'results only.</p><pre id="render-check">render check pending</pre></footer></main>'
        f"<script>{_RENDER_CHECK}</script></body></html>\n"
    )
