"""Relative links in README.md and docs/*.md resolve: the file exists and a #anchor names one of its headings.

Anchors follow GitHub's slugs: lowercase, punctuation dropped except '-' and '_', spaces become '-',
a repeated heading gets -1, -2, ... No network: http(s) and mailto links are skipped.
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _prose(text: str) -> str:
    """The text without fenced code blocks and with inline code spans blanked (they hold no links)."""
    return _CODE.sub("code", _FENCE.sub("", text))


def slug(heading: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()  # a link's text stays
    return "".join(c for c in text if c.isalnum() or c in "-_ ").replace(" ", "-")


def anchors(path: Path) -> set:
    seen, out = {}, set()
    for line in _FENCE.sub("", path.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            s = slug(m.group(1))
            n = seen.get(s, 0)
            seen[s] = n + 1
            out.add(s if n == 0 else f"{s}-{n}")
    return out


def links():
    for page in PAGES:
        for target in _LINK.findall(_prose(page.read_text(encoding="utf-8"))):
            if not re.match(r"[a-z][a-z0-9+.-]*:", target):
                yield pytest.param(page, target, id=f"{page.relative_to(ROOT)}:{target}")


def test_slug_follows_github():
    assert slug("The quick search (`make demo`)") == "the-quick-search-make-demo"
    assert slug("ONNX: export and cost") == "onnx-export-and-cost"
    assert slug("paper_mbv2, the reference network") == "paper_mbv2-the-reference-network"


def test_pages_have_links():
    assert len(list(links())) > 50


@pytest.mark.parametrize("page,target", list(links()))
def test_link_resolves(page, target):
    path, _, anchor = target.partition("#")
    dest = (page.parent / path).resolve() if path else page
    assert dest.exists(), f"{page.name}: {target}: no such file"
    if anchor:
        assert dest.suffix == ".md", f"{page.name}: {target}: an anchor into a non-markdown file"
        assert anchor in anchors(dest), f"{page.name}: {target}: no heading with that anchor in {dest.name}"
