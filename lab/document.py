"""A tiny document model (sections of text, tables and images) rendered to Markdown and to one
self-contained HTML page (images embedded as base64 PNG, inline CSS, no scripts).

Text blocks accept a small Markdown subset, the same in both outputs: paragraphs, `- ` bullet lists,
`code`, **bold**, and `## headings` inside human-written notes are turned into bold lines.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Text:
    markdown: str


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str | None = None
    align_right_from: int = 1  # columns from this index on are numbers


@dataclass
class Image:
    path: Path
    alt: str


Block = Text | Table | Image


@dataclass
class Section:
    title: str
    blocks: list[Block | Section] = field(default_factory=list)

    def add(self, *blocks: Block | Section) -> Section:
        self.blocks.extend(blocks)
        return self


@dataclass
class Document:
    title: str
    sections: list[Section] = field(default_factory=list)


# ---- Markdown -------------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(table: Table) -> str:
    lines = []
    if table.caption:
        lines.append(f"*{table.caption}*\n")
    lines.append("| " + " | ".join(_md_cell(h) for h in table.headers) + " |")
    lines.append(
        "|"
        + "|".join("---:" if i >= table.align_right_from else "---" for i in range(len(table.headers)))
        + "|"
    )
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def _md_blocks(blocks: list[Block | Section], level: int, base: Path) -> list[str]:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Section):
            out.append(f"{'#' * level} {block.title}")
            out += _md_blocks(block.blocks, level + 1, base)
        elif isinstance(block, Text):
            out.append(block.markdown.strip())
        elif isinstance(block, Table):
            out.append(_md_table(block))
        else:
            try:
                target = block.path.relative_to(base)
            except ValueError:
                target = block.path
            out.append(f"![{block.alt}]({target.as_posix()})")
    return out


def to_markdown(document: Document, base: Path) -> str:
    """Markdown with images referenced relative to `base` (the folder the .md file is written to)."""
    parts = [f"# {document.title}"]
    for section in document.sections:
        parts += _md_blocks([section], 2, base)
    return "\n\n".join(parts) + "\n"


# ---- HTML -----------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 8px}
th{background:#f0f0f0}td.n{text-align:right;font-variant-numeric:tabular-nums}
caption{caption-side:top;text-align:left;font-style:italic;padding:4px 0}
img{max-width:100%;border:1px solid #eee;margin:0.5em 0}code{background:#f4f4f4;padding:0 3px}
"""


def inline(text: str) -> str:
    """Escape, then apply `code` and **bold**."""
    escaped = html.escape(text)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


def _html_text(markdown: str) -> str:
    out: list[str] = []
    for para in re.split(r"\n\s*\n", markdown.strip()):
        lines = [line for line in para.splitlines() if line.strip()]
        if lines and all(line.lstrip().startswith(("- ", "* ")) for line in lines):
            items = "".join(f"<li>{inline(line.lstrip()[2:])}</li>" for line in lines)
            out.append(f"<ul>{items}</ul>")
        elif lines and lines[0].startswith("#"):
            out.append(f"<p><strong>{inline(lines[0].lstrip('#').strip())}</strong></p>")
            if lines[1:]:
                out.append(f"<p>{inline(' '.join(lines[1:]))}</p>")
        elif lines and lines[0].startswith("```"):
            code = "\n".join(line for line in lines if not line.startswith("```"))
            out.append(f"<pre><code>{html.escape(code)}</code></pre>")
        elif lines:
            out.append(f"<p>{inline(' '.join(lines))}</p>")
    return "\n".join(out)


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{inline(h)}</th>" for h in table.headers)
    rows = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{inline(c)}</td>' if i >= table.align_right_from else f"<td>{inline(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in table.rows
    )
    caption = f"<caption>{inline(table.caption)}</caption>" if table.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _html_image(image: Image) -> str:
    data = base64.b64encode(image.path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(image.alt)}" src="data:image/png;base64,{data}"></figure>'


def _html_blocks(blocks: list[Block | Section], level: int) -> list[str]:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Section):
            out.append(f"<h{min(level, 6)}>{inline(block.title)}</h{min(level, 6)}>")
            out += _html_blocks(block.blocks, level + 1)
        elif isinstance(block, Text):
            out.append(_html_text(block.markdown))
        elif isinstance(block, Table):
            out.append(_html_table(block))
        else:
            out.append(_html_image(block))
    return out


def to_html(document: Document) -> str:
    """One self-contained HTML page."""
    body = "\n".join(_html_blocks(list(document.sections), 2))
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(document.title)}</title><style>{CSS}</style></head>"
        f"<body><h1>{html.escape(document.title)}</h1>\n{body}\n</body></html>\n"
    )
