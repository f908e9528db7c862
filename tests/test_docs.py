"""The README stays one page and no link in it or in the guides under docs/ rots.

`make docs` (MkDocs --strict) checks the guides' links too; this test also covers README.md and
runs without MkDocs.
"""

import re
import unicodedata
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
GUIDES = ("steward", "engineer", "officer", "operations", "security", "benchmarks")
MAX_README_LINES = 250

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _pages() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.glob("*.md"))]


def _prose(text: str) -> str:
    """The text without fenced code blocks and code spans (links there are not links)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def _slug(heading: str) -> str:
    """The anchor MkDocs (Python-Markdown's toc) gives a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _anchors(page: Path) -> set[str]:
    return {_slug(h) for h in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8")))}


def _links(page: Path) -> list[str]:
    return LINK.findall(_prose(page.read_text(encoding="utf-8")))


def test_when_the_readme_is_counted_then_it_is_one_page():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES


@pytest.mark.parametrize("guide", GUIDES)
def test_when_a_reader_follows_the_readme_then_their_guide_exists_and_is_linked(guide):
    assert (DOCS / f"{guide}.md").is_file()
    assert f"docs/{guide}.md" in _links(REPO / "README.md")


def test_when_mkdocs_builds_then_every_guide_is_in_its_nav():
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["docs_dir"] == "docs" and config["strict"] is True
    pages = {next(iter(item.values())) for item in config["nav"]}
    assert {f"{g}.md" for g in GUIDES} <= pages
    assert pages == {p.name for p in DOCS.glob("*.md")}


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_when_a_page_links_within_the_repository_then_the_target_and_anchor_exist(page):
    broken = []
    for target in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: no heading with anchor #{anchor}")
        elif page.parent == DOCS and not resolved.is_relative_to(DOCS):
            broken.append(f"{target}: outside docs/ (MkDocs cannot link it; use a code span)")
    assert broken == []


def test_when_links_are_found_then_code_is_not_read_as_a_link():
    text = "see [a](a.md) and `[b](b.md)`\n```\n[c](c.md)\n```\n"
    assert LINK.findall(_prose(text)) == ["a.md"]
    slug = _slug("Where `make demo` printed: 4.22× (median)")
    assert slug == "where-make-demo-printed-422-median"
