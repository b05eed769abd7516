"""The documentation stands alone: every relative link in README.md and docs/ resolves
(file and, for `#anchor`, a heading of that file), and no tracked file points at
documents outside the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
# Pointers to the design notes and research seeds this repository was built from, which a
# user who clones it does not have (spelled in pieces so this line does not match itself).
OUTSIDE = re.compile("|".join((r"\.\./" + "shared", "DESIGN" + " §", "seed" + r" 00\d §")))


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")),
            *sorted(ROOT.glob("packages/*/README.md")), *sorted(ROOT.glob("apps/*/README.md"))]


def anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {anchor(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", page.read_text(), re.M)}


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    bad = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):  # http(s), mailto: not checked offline
            continue
        path, _, frag = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            shown = dest.relative_to(root) if dest.is_relative_to(root) else dest
            bad.append(f"{target} (no {shown})")
        elif frag and dest.suffix == ".md" and frag not in anchors(dest):
            bad.append(f"{target} (no heading #{frag} in {dest.name})")
    return bad


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert not broken_links(page), f"{page.relative_to(ROOT)}: {broken_links(page)}"


def test_the_checker_sees_a_broken_link(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# Top part\n[ok](p.md#top-part) [gone](missing.md) [bad](p.md#nowhere)\n"
                    "[web](https://example.org) ![img](x.png)\n")
    (tmp_path / "x.png").write_bytes(b"")
    bad = broken_links(page, tmp_path)
    assert [b.split(" ")[0] for b in bad] == ["missing.md", "p.md#nowhere"]


def test_every_package_has_a_readme():
    projects = [p.parent for p in (*ROOT.glob("packages/*/pyproject.toml"),
                                   *ROOT.glob("apps/*/pyproject.toml"))]
    assert projects and all((p / "README.md").is_file() for p in projects), \
        [str(p.relative_to(ROOT)) for p in projects if not (p / "README.md").is_file()]


def test_docs_has_the_pages_the_readme_promises():
    for name in ("method.md", "architecture.md", "protocol.md", "models.md"):
        assert (ROOT / "docs" / name).is_file()


def test_no_file_refers_to_documents_outside_the_repository():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    hits = []
    for name in tracked:
        path = ROOT / name
        if path.suffix in {".lock", ".png", ".npy"} or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        hits += [f"{name}:{i}" for i, line in enumerate(text.splitlines(), 1)
                 if OUTSIDE.search(line)]
    assert not hits, hits


def test_the_config_reference_is_the_schemas():
    """docs/config-reference.md is what the schema generates, and covers every key."""
    from ttt_train.config import config_schema
    from ttt_train.reference import reference_markdown

    page = (ROOT / "docs" / "config-reference.md").read_text()
    assert page == reference_markdown(), \
        "stale: run python -m ttt_train.reference docs/config-reference.md"
    missing = [k for k in config_schema() if f"`{k}" not in page]
    assert not missing, missing
