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


# ---- Legible figures: a property of the build (autograder/book/figures.py) ------------------------

def _figure(width_in: float, fontsize: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width_in, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, "label", fontsize=fontsize)
    return fig


def test_a_figure_with_tiny_text_is_refused_and_a_legible_one_passes():
    """Does the figures module refuse a figure whose smallest text the column would show below
    9 px, at full size (1.53 px per point at 110 dpi) and scaled down when wider than the column?"""
    import matplotlib.pyplot as plt

    from autograder.book import figures

    assert figures.MIN_TEXT_PX == 9 and figures.COLUMN_PX > 500
    with pytest.raises(figures.IllegibleFigure, match="px high"):
        figures.check_legible(_figure(4, 4))           # 4 pt at full size: 6.1 px
    assert figures.check_legible(_figure(4, 7)) >= 9   # 7 pt at full size: 10.7 px
    wide = _figure(16, 7)                              # the same 7 pt, shrunk into the column
    px, scale, text = figures.smallest_text(wide)
    assert text == "label" and scale < 0.9 and px < 9
    with pytest.raises(figures.IllegibleFigure):
        figures.glue_figure("never_glued", wide)
    plt.close("all")


def test_a_page_kernel_refuses_an_illegible_figure_it_displays_inline():
    """A figure a page shows without glue_figure (the inline backend) fails its cell, as the
    book's build runs it, once the page has imported the figures module; a legible one does not."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    def run(fontsize):
        nb = nbformat.v4.new_notebook(cells=[
            nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nfrom autograder.book import figures"),
            nbformat.v4.new_code_cell(f"fig, ax = plt.subplots(figsize=(4, 2))\nax.set_title('t', fontsize={fontsize})"),
        ])
        NotebookClient(nb, timeout=120, kernel_name="python3",
                       resources={"metadata": {"path": str(REPO / "book")}}).execute()
        return nb

    outputs = run(10).cells[1].outputs
    assert any("image/png" in o.get("data", {}) for o in outputs)
    with pytest.raises(CellExecutionError, match="IllegibleFigure"):
        run(4)


# ---- Defects a reader saw, one test per kind ------------------------------------------------------

def article_of(page: Path) -> str:
    raw = page.read_text()
    start = raw.find("<article")
    return raw[start:raw.find("</article>", start)] if start >= 0 else raw


def test_no_page_says_the_placeholder_author(books):
    for edition in ("student", "instructor"):
        root = books[edition]
        said = [p.relative_to(root).as_posix() for p in root.rglob("*.html")
                if "_static" not in p.parts and "The course's authors" in html.unescape(p.read_text())]
        assert not said, f"{edition}: a placeholder author on {said[:5]}"


def test_intro_names_its_chapters_once_and_links_every_chapter(built):
    """The intro has one "Chapters"-like heading (no second one from a table of contents), and
    links every chapter page of the TOC."""
    article = article_of(built / "book" / "intro.html")
    headings = [html.unescape(re.sub(r"<[^>]+>", "", h)).strip()
                for h in re.findall(r"<(?:h\d|p class=\"caption[^\"]*\")[^>]*>(.*?)</(?:h\d|p)>", article, re.S)]
    assert sum("Chapters" in h for h in headings) == 0, headings
    for page in book.chapter_pages():
        assert re.search(rf'href="[^"]*{page.split("/")[-1]}\.html"', article), f"the intro does not link {page}"
    text = " ".join(text_of(built / "book" / "intro.html").split())
    assert "Before you start" in text and "reading" in text and "exercises" in text
    # the reading times, substituted from the chapters' sources at this build
    from autograder.book.words import reading_substitutions

    for key, value in reading_substitutions(REPO, book.toc("student")).items():
        assert f"{{{{ {key} }}}}" not in text and value in text, (key, value)


def captions_of(page: Path) -> list[str]:
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", c)).split())
            for c in re.findall(r"<figcaption>(.*?)</figcaption>", page.read_text(), re.S)]


# A caption is for readers: no module paths or helper calls from the build's own code.
INTERNAL_NAME = re.compile(r"\b(?:figures|animations|autograder|chapter_helpers|glue)\.\w+|\b[a-z_]+\.[a-z_]+\([^)]*\)")


def test_no_caption_names_an_internal_helper(built):
    found = {}
    for page in book.chapter_pages() + [p for p in toc_pages() if p.startswith("book/0")]:
        for caption in captions_of(built / f"{page}.html"):
            hit = INTERNAL_NAME.search(caption.replace("F.", "torch.nn.functional_"))
            if hit and not hit.group(0).startswith(("torch.", "nn.", "F.")):
                found.setdefault(page, []).append(hit.group(0))
    assert not found, f"captions naming the build's own helpers: {found}"
    assert INTERNAL_NAME.search("A 4×4 colour image (figures.colour_image(4))"), "the pattern must catch the known case"


# Prose that sends the reader to code: it must sit next to a cell whose code the page shows.
POINTS_AT_CODE = re.compile(r"(?:code|cell) (?:above|below)|(?:asserts?|asserted|checks?) (?:above|below)"
                            r"|(?:above|below) asserts", re.I)


def prose_pointing_at_hidden_code(article: str) -> list[str]:
    """Paragraphs that say "the code above/below ..." where the nearest cell that way shows no code."""
    blocks = [(m.start(), "cell", "cell_input" in article[m.start():article.find("</div>", m.start()) + 400])
              for m in re.finditer(r'<div class="cell[ "]', article)]
    found = []
    for m in re.finditer(r"<p>(.*?)</p>", article, re.S):
        text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", m.group(1))).split())
        hit = POINTS_AT_CODE.search(text)
        if not hit:
            continue
        if "above" in hit.group(0).lower():
            near = [b for b in blocks if b[0] < m.start()][-1:]
        else:
            near = [b for b in blocks if b[0] > m.start()][:1]
        if not near or not near[0][2]:
            found.append(text[max(0, hit.start() - 60):hit.end() + 40])
    return found


def test_no_prose_points_at_hidden_code(built):
    found = {page: hits for page in toc_pages() if page.startswith("book/")
             for hits in [prose_pointing_at_hidden_code(article_of(built / f"{page}.html"))] if hits}
    assert not found, f"prose points at code the page hides: {found}"
    hidden = '<div class="cell tag_remove-input docutils container">\n</div>\n<p>The code above asserts it.</p>'
    assert prose_pointing_at_hidden_code(hidden), "the check must catch the known case"


def test_every_figure_image_has_alt_text_saying_what_it_shows(built):
    """Every image in a chapter's article has alt text (its caption where it has one), never
    empty and never the image's file name, so that a screen reader says what it shows."""
    bad = {}
    for page in toc_pages():
        for tag in re.findall(r"<img\b[^>]*>", article_of(built / f"{page}.html")):
            alt = html.unescape((re.search(r'\salt="([^"]*)"', tag) or [None, ""])[1]).strip()
            if len(alt) < 8 or re.search(r"\.(png|svg|jpe?g|gif)$|^_images/|^data:", alt):
                bad.setdefault(page, []).append(tag[:120])
    assert not bad, f"images without alt text: {bad}"


def test_exercise_pages_collapse_the_colab_install_cell(built):
    """The Colab install cell is on every exercise page, its code collapsed (hidden input, one
    click shows it); the notebook file itself keeps it untagged."""
    from autograder.book import colab

    for aid in ASSIGNMENTS:
        article = article_of(built / "notebooks" / aid / f"{aid}.html")
        cells = re.split(r'(?=<div class="cell[ "])', article)
        install = [c for c in cells if "Google Colab only" in html.unescape(re.sub(r"<[^>]+>", "", c))]
        assert len(install) == 1, aid
        assert "tag_hide-input" in install[0] and "<details" in install[0], f"{aid}: the install cell is not collapsed"
        nb = json.loads((REPO / "notebooks" / aid / f"{aid}.ipynb").read_text())
        cell = next(c for c in nb["cells"] if c.get("id") == colab.CELL_ID)
        assert "hide-input" not in cell["metadata"].get("tags", [])


def test_every_chapter_links_its_exercise_notebook(built):
    """Chapters 1 to 9 each link their exercise page, and the exercise pages are in the book."""
    by_number = {aid[2:4]: aid for aid in ASSIGNMENTS}
    for page in book.chapter_pages():
        aid = by_number[page.split("/")[-1][:2]]
        article = article_of(built / f"{page}.html")
        assert f"notebooks/{aid}/{aid}.html" in article, f"{page} does not link its exercises ({aid})"


def test_the_prose_count_leaves_out_code_math_captions_and_tables():
    from autograder.book.words import prose_words

    page = ('<nav>menu words here</nav><article class="bd-article"><p>one two three</p>'
            '<div class="highlight"><pre>x = 1 + 2</pre></div><span class="math notranslate">\\(a + b\\)</span>'
            '<figure><img src="a.png"><figcaption>a caption of many words</figcaption></figure>'
            '<table><tr><td>cell words</td></tr></table><div class="cell_output"><pre>out</pre></div>'
            '<p>four <code>code</code> five</p></article>')
    assert prose_words(page) == 6  # one two three four code five


@pytest.fixture(scope="module")
def prose_counts(books) -> dict[str, dict[str, int]]:
    """Words of prose per page of each edition, counted once for the tests below."""
    from autograder.book.words import page_counts

    return {edition: page_counts(books[edition]) for edition in ("student", "instructor")}


def test_no_page_runs_over_the_prose_limit(prose_counts):
    """Every page of either edition reads in at most PAGE_LIMIT words of prose (the core path is split into
    a chapter page and its deep dives)."""
    from autograder.book.words import PAGE_LIMIT

    for edition in ("student", "instructor"):
        counts = prose_counts[edition]
        assert counts.get("book/06_transposed_convolution.html", 0) > 500, sorted(counts)[:10]
        over = {page: n for page, n in counts.items() if n > PAGE_LIMIT}
        assert not over, f"{edition}: pages over {PAGE_LIMIT} words of prose: {over}"


def test_the_core_path_reads_in_half_the_words_it_took_before_the_split(prose_counts):
    """The chapter pages a learner reads in order hold at most half the prose they held before the deep dives
    were split off; the deep dives stay, one click away (each chapter's first section)."""
    from autograder.book import toc
    from autograder.book.words import CORE_BEFORE_SPLIT, CORE_PATH_LIMIT, core_pages

    pages = core_pages(toc("student"))
    assert [Path(p).stem for p in pages] == list(CORE_BEFORE_SPLIT), "a chapter without its count before the split"
    counts = prose_counts["student"]
    core = {page: counts[page] for page in pages}
    assert sum(core.values()) <= CORE_PATH_LIMIT, f"the core path holds {sum(core.values())} words: {core}"


def test_the_source_count_leaves_out_code_math_tables_and_directives():
    from autograder.book.words import source_words

    page = ("---\nkernelspec:\n  name: python3\n---\n\n(label)=\n# Title here\n\nOne two $x + y$ three.\n\n"
            "```{code-cell} ipython3\n:tags: [remove-input]\nx = 1 + 2\n```\n\n$$\na = b\n$$\n\n"
            "| a | b |\n|---|---|\n| cell | words |\n\n```{figure} a.png\n:name: f\n\nA caption of words.\n```\n\n"
            "See {doc}`the page <other>` and `code` and [a link](https://example.org).\n\n"
            "```{admonition} A title\n:class: warning\n\nBoxed words count.\n```\n")
    # Title here / One two three / See the page and code and a link / Boxed words count
    assert source_words(page) == 16


def test_reading_times_come_from_every_chapter_s_page_and_its_deep_dives():
    """Does the intro's reading time of each chapter count its own page and its deep dives (not its exercise
    notebook), so a page moved into a deep dive moves its minutes too?"""
    from autograder.book import toc
    from autograder.book.words import READING_WPM, reading_minutes, source_words
    from autograder.paths import REPO

    t = toc("student")
    times = reading_minutes(REPO, t)
    chapters = [c for part in t["parts"] if part.get("caption") == "Chapters" for c in part["chapters"]]
    assert list(times) == [c["file"] for c in chapters]
    for c in chapters:
        core, dives = times[c["file"]]
        words = source_words((REPO / f"{c['file']}.md").read_text(encoding="utf-8"))
        assert core >= 5 and abs(core - words / READING_WPM) <= 5, (c["file"], core, words)
        books = [s["file"] for s in c.get("sections", []) if s["file"].startswith("book/")]
        assert (dives > 0) == bool(books), c["file"]
