"""docs/index.md reaches every page under docs/: directly, or through pages it links (the
results pages through docs/results/index.md, their data pages through them)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
_LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)")
#: A link to a folder (``[attack-cost/](attack-cost/)``) reaches the pages in it.
_FOLDER = re.compile(r"\]\(([^)#\s]+/)\)")


def links(page: Path) -> set[Path]:
    """The .md pages ``page`` links to, as resolved paths (a folder: every page in it)."""
    text = page.read_text(encoding="utf-8")
    found = {(page.parent / target).resolve() for target in _LINK.findall(text)}
    for folder in _FOLDER.findall(text):
        found |= {p.resolve() for p in (page.parent / folder).rglob("*.md")}
    return found


def test_index_reaches_every_page() -> None:
    index = (DOCS / "index.md").resolve()
    listed = links(index)
    reached, todo = {index}, [index]
    while todo:
        for page in links(todo.pop()) - reached:
            reached.add(page)
            if page.is_file() and DOCS.resolve() in page.parents:
                todo.append(page)
    pages = {page.resolve() for page in DOCS.rglob("*.md")}
    missing = sorted(str(p.relative_to(ROOT)) for p in pages - reached)
    assert not missing, f"docs/index.md (or a page it links) should link: {missing}"
    broken = sorted(str(p) for p in listed if not p.is_file())
    assert not broken, f"docs/index.md links missing pages: {broken}"


def test_readme_links_resolve() -> None:
    readme = ROOT / "README.md"
    broken = sorted(str(p.relative_to(ROOT)) for p in links(readme) if not p.is_file())
    assert not broken, f"README.md links missing pages: {broken}"
    assert (DOCS / "howto" / "seed-models.md").resolve() in links(readme)
