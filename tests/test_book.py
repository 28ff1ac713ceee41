"""The Jupyter Book builds with warnings as errors and shows what the chapters compute."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
import torch.nn.functional as F
import torch

from autograder import book
from autograder import notebooks as nbs
from conftest import ASSIGNMENTS, REPO, solution_path
from test_notebooks import solution_lines


@pytest.fixture(scope="module")
def built(student_book) -> Path:
    """The student edition: what a class reads (the instructor edition differs by one part)."""
    return student_book


def text_of(page: Path) -> str:
    raw = page.read_text()
    raw = re.sub(r"<(script|style)\b.*?</\1>", "", raw, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", raw))


def toc_pages() -> list[str]:
    return book.pages("student")


def test_every_toc_page_is_built(built):
    for page in toc_pages():
        assert (built / f"{page}.html").exists(), page


def test_chapter_one_shows_its_executed_figures(built):
    page = built / "book" / "01_cnn_size_problem.html"
    images = re.findall(r'<img[^>]+src="([^"]+)"', page.read_text())
    assert len(images) >= 4
    for src in images:
        img = (page.parent / src).resolve()
        assert img.exists() and img.stat().st_size > 2000, src
    assert "<Figure size" not in page.read_text(), "a figure was rendered as text instead of an image"


def test_chapter_one_numbers_are_the_ones_torch_computes(built):
    text = " ".join(text_of(built / "book" / "01_cnn_size_problem.html").split())
    text = re.sub(r"\s*×\s*", "×", text)  # glued numbers sit in their own <span>
    five = F.conv2d(torch.zeros(1, 1, 7, 7), torch.zeros(1, 1, 3, 3)).shape[-1]
    assert f"PyTorch returns a {five}×{five} output" in text
    same = F.conv2d(torch.zeros(1, 1, 7, 7), torch.zeros(1, 1, 3, 3), padding=1).shape[-1]
    assert f"a 7×7 input gives a {same}×{same} output" in text


@pytest.mark.parametrize("aid", ASSIGNMENTS)
def test_exercise_notebook_is_a_page_shown_unexecuted(built, aid):
    page = built / "notebooks" / aid / f"{aid}.html"
    text = text_of(page)
    assert "NotImplementedError" in text
    assert "Traceback" not in text, "student notebooks must not be executed by the build"


TEXT_SUFFIXES = {".html", ".js", ".txt", ".md", ".ipynb", ".py", ".json", ".css", ".yml", ".inv"}


def files_showing(root: Path, lines: set[str]) -> dict[str, list[str]]:
    """Every shipped file that shows any of `lines`: raw, HTML-escaped, or once the syntax
    highlighter's tags are stripped from a page (how code reaches a reader)."""
    found = {}
    for f in root.rglob("*"):
        if not f.is_file() or f.suffix not in TEXT_SUFFIXES:
            continue
        raw = f.read_text(errors="replace")
        # Highlighted code is split into one <span> per token: drop the tags, keep the text.
        views = [raw, html.unescape(re.sub(r"<[^>]+>", "", raw)) if f.suffix == ".html" else ""]
        hits = [ln for ln in lines if any(ln in v or html.escape(ln, quote=False) in v for v in views)]
        if hits:
            found[f.relative_to(root).as_posix()] = hits
    return found


@pytest.mark.parametrize("aid", ASSIGNMENTS)
def test_student_edition_ships_no_solution_or_hidden_test_in_any_file(student_book, aid):
    """Does any file of the student edition (pages, page sources, search index, downloads) hold a
    line of a solution or of a hidden test?"""
    leaked = files_showing(student_book, solution_lines(aid))
    assert not leaked, f"the student edition leaks {aid}: " + "; ".join(f"{k}: {v[:2]}" for k, v in leaked.items())
    assert not (student_book / "solutions").exists() and not (student_book / "book" / "instructors.html").exists()


@pytest.mark.parametrize("aid", ASSIGNMENTS)
def test_instructor_edition_shows_each_solution_on_its_own_page_only(instructor_book, aid):
    """The same search finds the solutions in the instructor edition, on the solution page (so
    the student test above can fail), and nowhere else."""
    lines = solution_lines(aid)
    found = files_showing(instructor_book, lines)
    page = f"solutions/{aid}/{aid}.html"
    assert set(found.get(page, [])) == lines, f"{page} misses {sorted(lines - set(found.get(page, [])))[:3]}"
    elsewhere = {k for k in found if not k.startswith(("solutions/", "_sources/solutions/"))}
    assert not elsewhere, f"solution lines of {aid} outside the instructor part: {sorted(elsewhere)}"


def test_instructor_page_lists_every_assignment_with_its_points(instructor_book):
    text = " ".join(text_of(instructor_book / "book" / "instructors.html").split())
    grand = 0.0
    for aid in ASSIGNMENTS:
        cells = nbs.graded_cells(nbs.read(solution_path(aid)))
        grand += sum(c.points for c in cells)
        for c in cells:
            assert f"{c.grade_id} ({c.points:g})" in text, (aid, c.grade_id)
    assert f"all {grand:g}" in text


def test_every_chapter_page_shows_executed_figures(built):
    chapters = book.chapter_pages()
    assert len(chapters) >= 9 and all(page in toc_pages() for page in chapters)
    for page in chapters:  # the chapters (read from the TOC), not the intro or back matter
        html_text = (built / f"{page}.html").read_text()
        images = re.findall(r'<img[^>]+src="([^"]+)"', html_text)
        assert len(images) >= 2, f"{page} shows {len(images)} figures"
        assert "<Figure size" not in html_text, f"{page}: a figure was rendered as text"


def test_readme_links_every_exercise_notebook_as_make_release_writes_it():
    from autograder.book import colab

    readme = (REPO / "README.md").read_text()
    assert readme == colab.readme_text(), "README's table of exercises is stale: run `make release`"
    for aid in ASSIGNMENTS:
        assert f"notebooks/{aid}/{aid}.ipynb" in readme, f"README has no link for {aid}"


@pytest.mark.parametrize("edition", ["student", "instructor"])
def test_every_local_link_and_anchor_resolves(books, edition):
    """Does every href/src in every page point at a file the edition ships, and every #anchor at
    an id on its target page? (Links to other sites are for `make linkcheck LINKCHECK_EXTERNAL=1`.)"""
    from urllib.parse import unquote, urlsplit

    root = books[edition]
    ids: dict[Path, set[str]] = {}

    def ids_of(page: Path) -> set[str]:
        if page not in ids:
            ids[page] = set(re.findall(r'\sid="([^"]+)"', page.read_text()))
        return ids[page]

    broken, checked = [], 0
    for page in (p for p in root.rglob("*.html") if "_static" not in p.parts):  # _static: theme templates
        for url in re.findall(r'\s(?:href|src)="([^"]+)"', page.read_text()):
            parts = urlsplit(html.unescape(url))
            if parts.scheme or parts.netloc or url.startswith(("mailto:", "javascript:", "data:")):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            checked += 1
            if not target.exists():
                broken.append(f"{page.relative_to(root)} -> {url}")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in ids_of(target):
                broken.append(f"{page.relative_to(root)} -> {url} (no such anchor)")
    assert checked > 500, checked
    assert not broken, f"{len(broken)} broken links, e.g. {broken[:5]}"


def test_linkcheck_passes_offline(books, tmp_path):
    """`make linkcheck`'s builder, with links to other sites skipped as they are offline: every
    local link of the sources must resolve."""
    proc = book.build("student", tmp_path, cache=books["cache"], builder="linkcheck", quiet=True)
    report = book.report_dir(tmp_path) / "output.json"
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    assert len(rows) >= 10, "the link checker checked almost nothing"
    assert {r["status"] for r in rows} <= {"working", "ignored", "unchecked"}, [r for r in rows if r["status"] == "broken"]
    assert all(r["status"] == "ignored" for r in rows if r["uri"].startswith("http")), "offline, other sites are skipped"
