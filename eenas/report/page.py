"""A report page built once from blocks (text, tables, figures) and written as markdown and as HTML.

The HTML file is self-contained: figures are embedded as base64 PNG and tables as HTML, so it
can be mailed or archived alone; the markdown file links the PNGs that lie beside it.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from eenas.io import write_text
from eenas.report.tables import markdown, write_markdown


@dataclass(frozen=True)
class Figure:
    """A PNG beside the page."""

    path: Path
    alt: str


Block = str | pd.DataFrame | Figure  # str: markdown text (paragraphs, `code` and [links](target) only)
Section = tuple[str, Sequence[Block]]

STYLE = ("body{font-family:sans-serif;max-width:70em;margin:2em auto;line-height:1.4}"
         "table{border-collapse:collapse;font-size:0.85em;margin:1em 0}"
         "th,td{border:1px solid #ccc;padding:0.2em 0.5em;text-align:right}img{max-width:100%}")


def _markdown_block(block: Block) -> str:
    if isinstance(block, Figure):
        return f"![{block.alt}]({block.path.name})"
    if isinstance(block, pd.DataFrame):
        return markdown(block)
    return block


def _inline(text: str) -> str:
    """Markdown text as HTML: escaped, with `code` and [text](target) links."""
    text = re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text))  # quotes too: safe in href
    return re.sub(r"\[([^\]]*)\]\(([^)]*)\)", r'<a href="\2">\1</a>', text)


def _html_block(block: Block) -> str:
    if isinstance(block, Figure):
        data = base64.b64encode(block.path.read_bytes()).decode("ascii")
        return f'<p><img src="data:image/png;base64,{data}" alt="{html.escape(block.alt)}"></p>'
    if isinstance(block, pd.DataFrame):
        return block.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="", border=0)
    return "\n".join(f"<p>{_inline(p.strip())}</p>" for p in block.split("\n\n") if p.strip())


def html_page(title: str, sections: Iterable[Section]) -> str:
    parts = ["<!DOCTYPE html>", '<html><head><meta charset="utf-8">', f"<title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    for heading, blocks in sections:
        parts += [f"<h2>{html.escape(heading)}</h2>", *(_html_block(b) for b in blocks)]
    return "\n".join([*parts, "</body></html>", ""])


def write_page(out: Path, name: str, title: str, sections: Sequence[Section]) -> list[Path]:
    """``<name>.md`` and the self-contained ``<name>.html`` in ``out`` (figures must already be written)."""
    md = write_markdown(out / f"{name}.md", title,
                        [(heading, "\n\n".join(_markdown_block(b) for b in blocks)) for heading, blocks in sections])
    return [md, write_text(out / f"{name}.html", html_page(title, sections))]
