"""The documentation stays true to the repository: docs/conventions.md names tests that exist,
the links of the README and the docs reach files and headings that exist, and no document or
test points at a path outside the repository."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONVENTION_PAGE = ROOT / "docs" / "conventions.md"
DOCUMENTS = [ROOT / "README.md", CONVENTION_PAGE, ROOT / "tests" / "mindspore_ref" / "README.md",
             ROOT / "docs" / "export.md"]
TEST_REFERENCE = re.compile(r"(tests/[\w/]+\.py)::(\w+)")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.MULTILINE | re.DOTALL)
    return {_anchor(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)}


def test_conventions_names_only_tests_that_exist():
    references = TEST_REFERENCE.findall(CONVENTION_PAGE.read_text())
    assert len(references) > 50
    missing = [
        f"{file}::{name}"
        for file, name in sorted(set(references))
        if not (ROOT / file).exists()
        or not re.search(rf"^def {name}\(", (ROOT / file).read_text(), flags=re.MULTILINE)
    ]
    assert not missing, f"docs/conventions.md names tests that do not exist: {missing}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_reach_existing_files_and_headings(document):
    broken = []
    for target in LINK.findall(document.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file, _, anchor = target.partition("#")
        path = (document.parent / file).resolve() if file else document
        if not path.exists() or (anchor and anchor not in _anchors(path)):
            broken.append(target)
    assert not broken, f"{document.name}: broken links {broken}"


def test_readme_links_the_conventions():
    assert "](docs/conventions.md)" in (ROOT / "README.md").read_text()


def _outside_paths() -> list[str]:
    """Spellings of paths outside the repository (assembled, so this file does not match)."""
    return ["../" + "shared", "/" + "work/", "CONVENTION" + "S.md"]


def test_no_document_or_test_points_outside_the_repository():
    files = [*DOCUMENTS, *ROOT.glob("docs/**/*.md"), *ROOT.glob("examples/**/*.py")]
    files += [p for p in ROOT.glob("tests/**/*") if p.suffix in (".py", ".md")]
    offending = sorted(
        f"{path.relative_to(ROOT)}: {needle}"
        for path in set(files)
        for needle in _outside_paths()
        if needle in path.read_text()
    )
    assert not offending, offending
