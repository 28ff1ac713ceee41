"""The built book as a reader meets it: served on localhost and opened in a real headless Chromium.

Chromium is Debian's (`apt-get install chromium`, which `.ci/run` does); Playwright drives it and
its own browser download is never used. On a machine without Chromium these tests skip with the
reason shown, except where COURSE_REQUIRE_BROWSER=1 (CI), where a missing browser is a failure.
Screenshots land in _build/test-artifacts/browser/.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urljoin

import pytest

from autograder import book
from autograder.book import colab as colab_cell
from conftest import ASSIGNMENTS, REPO

SHOTS = REPO / "_build" / "test-artifacts" / "browser"
# Without the background-networking flags Chromium keeps calling home, which a closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def unavailable(reason: str):
    if os.environ.get("COURSE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (COURSE_REQUIRE_BROWSER=1: the browser test may not skip here)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    path = chromium_path()
    if path is None:
        unavailable("no Chromium found: install Debian's `chromium` package (or set CHROMIUM=/path) "
                    "to run the browser test")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is missing: run `make venv`")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


class Site:
    """A built edition served over HTTP on 127.0.0.1, as a reader's web server would."""

    def __init__(self, root: Path):
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.server.server_port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, page: str) -> str:
        return urljoin(self.base, f"{page}.html")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def sites(student_book, instructor_book):
    out = {"student": Site(student_book), "instructor": Site(instructor_book)}
    yield out
    for s in out.values():
        s.server.shutdown()


class Reader:
    """One browser tab that records everything a reader's console would show, and blocks (and
    records) any request that leaves localhost: the book must work offline."""

    def __init__(self, browser, site: Site):
        self.site = site
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.problems: list[str] = []
        self.external: list[str] = []
        self.context.route(lambda url: not url.startswith(site.base) and not url.startswith("data:"),
                           self._block)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}")
                     if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.problems.append(f"script error: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.url} ({r.failure})")
                     if r.url.startswith(site.base) else None)
        self.page.on("response", lambda r: self.problems.append(f"HTTP {r.status}: {r.url}")
                     if r.status >= 400 else None)

    def _block(self, route):
        self.external.append(route.request.url)
        route.abort()

    def open(self, page: str):
        self.page.goto(self.site.url(page), wait_until="load")
        self.page.wait_for_load_state("networkidle")
        return self.page

    def assert_clean(self, where: str):
        assert not self.external, f"{where} asked for other sites (the book must work offline): {self.external[:5]}"
        assert not self.problems, f"{where}: {self.problems[:5]}"

    def close(self):
        self.context.close()


@pytest.fixture
def reader(browser, sites):
    readers = []

    def make(edition: str = "student") -> Reader:
        r = Reader(browser, sites[edition])
        readers.append(r)
        return r

    yield make
    for r in readers:
        r.close()


def shoot(page, name: str):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


# Every page of the student edition, and the pages only the instructor edition has.
STUDENT_PAGES = book.pages("student")
CHAPTERS = book.chapter_pages()
PAGES = [("student", p) for p in STUDENT_PAGES] + [("instructor", p) for p in book.pages("instructor")
                                                  if p not in STUDENT_PAGES]

IMAGES_JS = """() => Array.from(document.images).map(i => ({
    src: (i.currentSrc || i.src).slice(0, 80), complete: i.complete, w: i.naturalWidth, h: i.naturalHeight}))"""

MATH_JS = """async () => {
    if (!window.MathJax || !MathJax.startup || !MathJax.startup.promise) return null;
    await MathJax.startup.promise;
    const all = Array.from(document.querySelectorAll('.math'));
    return {total: all.length,
            typeset: all.filter(e => e.querySelector('mjx-container') || e.tagName === 'MJX-CONTAINER').length,
            errors: document.querySelectorAll('mjx-merror').length,
            raw: all.filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 60)).slice(0, 3)};
}"""


@pytest.mark.parametrize("edition,page", PAGES, ids=[f"{e}:{p}" for e, p in PAGES])
def test_page_loads_cleanly_with_its_images_and_math(reader, edition, page):
    """Does the page load with no console error, no failed local request and no request to
    another site; does every image load with a non-zero size; is every formula typeset?"""
    r = reader(edition)
    tab = r.open(page)
    tab.wait_for_function("document.readyState === 'complete'")
    images = tab.evaluate(IMAGES_JS)
    broken = [i for i in images if not i["complete"] or i["w"] == 0 or i["h"] == 0]
    assert not broken, f"{page}: images that did not load: {broken[:3]}"
    math = tab.evaluate(MATH_JS)
    if tab.locator(".math").count():
        assert math is not None, f"{page} has formulas but MathJax did not start"
        assert math["typeset"] == math["total"] and math["errors"] == 0, f"{page}: math not typeset: {math}"
    r.assert_clean(page)
    if page in CHAPTERS:
        figures = [i for i in images if i["w"] > 50]
        assert len(figures) >= 2, f"{page} shows {len(figures)} figures"


def test_the_checks_above_are_not_vacuous(reader):
    """Chapter 6 must be a page with typeset math and loaded figures, and a broken image must be
    caught by the same code: point one image at a file that does not exist."""
    r = reader()
    tab = r.open("book/06_transposed_convolution")
    math = tab.evaluate(MATH_JS)
    assert math and math["total"] >= 10 and math["typeset"] == math["total"], math
    tab.locator(".math").nth(3).scroll_into_view_if_needed()
    shoot(tab, "chapter06-math")
    images = tab.evaluate(IMAGES_JS)
    assert sum(i["w"] > 50 for i in images) >= 4
    tab.evaluate("""() => { const files = Array.from(document.images).filter(i => !i.src.startsWith('data:'));
                            const i = files[files.length - 1];   // a figure file (players' frames are inline)
                            i.src = i.src.split('?')[0] + '.missing.png'; }""")
    tab.wait_for_timeout(500)
    assert any(not i["w"] for i in tab.evaluate(IMAGES_JS)) and any("404" in p for p in r.problems)


def test_next_and_previous_walk_every_page_in_order(reader):
    """Clicking "next" from the first page reaches every page of the table of contents in order,
    and "previous" walks back from the last."""
    r = reader()
    tab = r.open(STUDENT_PAGES[0])
    seen = [tab.url]
    while tab.locator("a.right-next").count():
        tab.locator("a.right-next").first.click()
        tab.wait_for_load_state("load")
        seen.append(tab.url)
        assert len(seen) <= len(STUDENT_PAGES), f"next keeps going: {seen[-3:]}"
    assert seen == [r.site.url(p) for p in STUDENT_PAGES]
    back = [tab.url]
    while tab.locator("a.left-prev").count():
        tab.locator("a.left-prev").first.click()
        tab.wait_for_load_state("load")
        back.append(tab.url)
        assert len(back) <= len(STUDENT_PAGES)
    assert back == seen[::-1]
    r.assert_clean(tab.url)


def test_sidebar_reaches_every_chapter(reader):
    """Does the sidebar link every page, and does clicking a chapter there open it?"""
    r = reader()
    tab = r.open(STUDENT_PAGES[0])
    hrefs = tab.eval_on_selector_all("nav.bd-docs-nav a.reference.internal", "els => els.map(e => e.href)")
    missing = [p for p in STUDENT_PAGES[1:] if r.site.url(p) not in hrefs]
    assert not missing, f"the sidebar has no link to {missing}"
    shoot(tab, "intro-with-sidebar")
    for page in CHAPTERS:
        tab.locator(f"nav.bd-docs-nav a.reference.internal[href$='{page.split('/')[-1]}.html']").first.click()
        tab.wait_for_load_state("load")
        assert tab.url == r.site.url(page)
        number = page.split("/")[-1][:2].lstrip("0")
        assert tab.locator("h1").first.inner_text().startswith(f"{number}."), tab.locator("h1").first.inner_text()
    r.assert_clean(tab.url)


@pytest.mark.parametrize("word,page", [("checkerboard", "book/07_checkerboard"),
                                       ("unpooling", "book/05_max_unpooling"),
                                       ("shuffle", "book/09_making_it_fast")])
def test_search_box_finds_a_chapter_by_a_word_in_it(reader, word, page):
    """Type a word into the search box as a reader would: the results link the chapter."""
    r = reader()
    tab = r.open(STUDENT_PAGES[0])
    tab.locator("button.search-button__button").first.click()
    box = tab.locator("#pst-search-dialog input[type=search]")
    box.fill(word)
    box.press("Enter")
    tab.wait_for_url(re.compile(r"search\.html\?q="))
    tab.wait_for_selector("#search-results ul.search li a", timeout=20_000)
    links = tab.eval_on_selector_all("#search-results ul.search li a", "els => els.map(e => e.href)")
    assert any(h.split("#")[0].split("?")[0] == r.site.url(page) for h in links), (word, links[:8])
    if word == "checkerboard":
        shoot(tab, "search-checkerboard")
    r.assert_clean(tab.url)


@pytest.mark.parametrize("aid", ASSIGNMENTS)
def test_exercise_page_offers_colab_and_a_download_of_the_student_notebook(reader, aid):
    """Each exercise page has an "open in Colab" link to its notebook in the course repository,
    and a download link that serves the student notebook (stubs, no solution)."""
    r = reader()
    page = f"notebooks/{aid}/{aid}"
    tab = r.open(page)
    colab = tab.eval_on_selector_all("a[href*='colab.research.google.com']", "els => els.map(e => e.href)")
    url, branch = colab_cell.published_repository()
    assert colab == [f"https://colab.research.google.com/github/{url.split('github.com/')[1]}/blob/"
                     f"{branch}/{page}.ipynb"], colab
    downloads = [h for h in tab.eval_on_selector_all("a[href$='.ipynb']", "els => els.map(e => e.href)")
                 if h.startswith(r.site.base)]
    assert downloads, f"{page} has no notebook download link"
    reply = tab.request.get(downloads[0])
    assert reply.status == 200
    nb = json.loads(reply.body())
    assert nb == json.loads((REPO / f"{page}.ipynb").read_text()), "the download is not the student notebook"
    if aid == "ch06_transposed_conv":
        tab.locator("button[aria-label='Launch interactive content']").first.click()
        tab.wait_for_timeout(300)
        shoot(tab, "exercise06-launch-buttons")
    r.assert_clean(tab.url)


def test_animation_players_step_through_their_frames(reader):
    """The build-made animations (matplotlib JS-HTML players) show a frame and step to the next."""
    r = reader()
    found = 0
    for page in ("book/01_cnn_size_problem", "book/06_transposed_convolution"):
        tab = r.open(page)
        players = tab.locator("div.animation")
        assert players.count() >= 1, f"{page} has no animation player"
        for k in range(players.count()):
            player = players.nth(k)
            player.scroll_into_view_if_needed()
            img = player.locator("img").first
            first = img.get_attribute("src")
            assert img.evaluate("i => i.naturalWidth") > 0
            player.locator("button[title='Next frame']").click()
            tab.wait_for_timeout(200)
            assert img.get_attribute("src") != first, f"{page}: the player's frame did not change"
            found += 1
        shoot(tab, f"animation-{page.split('/')[-1]}")
    assert found >= 2
    r.assert_clean(tab.url)


def test_a_missing_browser_skips_with_its_reason_but_fails_where_required(monkeypatch):
    """On a learner's machine without Chromium the browser tests skip and say how to get it; in CI
    (COURSE_REQUIRE_BROWSER=1, set by .ci/run) the same situation is a failure, never a skip."""
    monkeypatch.delenv("COURSE_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="install Debian's `chromium`"):
        unavailable("no Chromium found: install Debian's `chromium` package")
    monkeypatch.setenv("COURSE_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="may not skip"):
        unavailable("no Chromium found: install Debian's `chromium` package")
    assert "COURSE_REQUIRE_BROWSER=1" in (REPO / ".ci" / "run").read_text()


# ---- Legible figures, and nothing wider than the column -----------------------------------------

# Every image of the article: its displayed and natural width, and the dpi its PNG records (pHYs).
FIGURES_JS = """async () => {
    const art = document.querySelector('article.bd-article');
    const dpiOf = async (src) => {
        try {
            const b = new Uint8Array(await (await fetch(src)).arrayBuffer());
            for (let i = 8; i + 8 < b.length;) {
                const n = ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0;
                const type = String.fromCharCode(b[i + 4], b[i + 5], b[i + 6], b[i + 7]);
                if (type === 'pHYs') {
                    const ppm = ((b[i + 8] << 24) | (b[i + 9] << 16) | (b[i + 10] << 8) | b[i + 11]) >>> 0;
                    return b[i + 16] === 1 ? ppm * 0.0254 : null;
                }
                if (type === 'IDAT' || type === 'IEND') return null;
                i += 12 + n;
            }
        } catch (e) { return null; }
        return null;
    };
    const out = [];
    for (const img of art.querySelectorAll('img')) {
        const r = img.getBoundingClientRect();
        const fig = img.closest('figure');
        const caption = fig && fig.querySelector('figcaption .caption-number');
        out.push({src: (img.currentSrc || img.src).slice(-60), shown: r.width, natural: img.naturalWidth,
                  dpi: await dpiOf(img.currentSrc || img.src),
                  name: caption ? caption.textContent.trim() : (img.closest('div.animation') ? 'player' : 'image')});
    }
    return out;
}"""

# Tables, figures, images, code and display math: none may reach past the column, or scroll inside it.
OVERFLOW_JS = """() => {
    const art = document.querySelector('article.bd-article');
    const cs = getComputedStyle(art), box = art.getBoundingClientRect();
    const right = box.right - parseFloat(cs.paddingRight) + 1;
    const bad = [];
    const sel = 'table, figure, img, pre, div.pst-scrollable-table-container, div.cell_output, mjx-container[display="true"]';
    for (const el of art.querySelectorAll(sel)) {
        if (!el.getClientRects().length) continue;       // not shown (a collapsed cell)
        const r = el.getBoundingClientRect();
        const scrolls = el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0;
        if (r.right > right || scrolls)
            bad.push(`${el.tagName.toLowerCase()}.${(el.className || '').toString().split(' ')[0]}: right ${Math.round(r.right)} > ${Math.round(right)}` +
                     (scrolls ? ` (scrolls: ${el.scrollWidth} > ${el.clientWidth})` : '') + ` "${el.textContent.trim().slice(0, 40)}"`);
    }
    return {column: right - 1 - (box.left + parseFloat(cs.paddingLeft)), bad};
}"""

# A literal backslash in typeset math: a TeX command MathJax did not understand (e.g. \\_ in \\text).
MATH_BACKSLASH_JS = """async () => {
    if (!window.MathJax || !MathJax.startup || !MathJax.startup.promise) return [];
    await MathJax.startup.promise;
    const bad = [];
    for (const c of document.querySelectorAll('mjx-container')) {
        const drawn = c.querySelector('mjx-c.mjx-c5C');
        const mml = c.querySelector('mjx-assistive-mml');
        const texts = mml ? Array.from(mml.querySelectorAll('mtext, mi')).map(e => e.textContent) : [];
        if (drawn || texts.some(t => t.includes('\\\\')))
            bad.push((mml ? mml.textContent : c.textContent).slice(0, 60));
    }
    return bad;
}"""

MIN_PX_PER_POINT = 0.9


def test_the_column_is_as_wide_as_the_figures_module_assumes(reader):
    """figures.COLUMN_PX is the article column of a 1280 px wide window, measured here."""
    from autograder.book import figures

    r = reader()
    tab = r.open("book/02_nearest_neighbour")
    column = tab.evaluate(OVERFLOW_JS)["column"]
    assert abs(column - figures.COLUMN_PX) <= 2, f"the column is {column:.0f} px; figures.COLUMN_PX says {figures.COLUMN_PX}"


READ_PAGES = [("student", p) for p in STUDENT_PAGES]


@pytest.mark.parametrize("edition,page", READ_PAGES, ids=[p for _, p in READ_PAGES])
def test_figures_are_shown_legibly_and_nothing_overflows_the_column(reader, edition, page):
    """Is every image shown at 0.9 CSS px or more per typographic point of its own size
    (displayed width / (natural width / dpi x 72), the dpi read from the PNG), does no table,
    figure, image, code block or formula overflow the column, and does no typeset formula show
    a literal backslash?"""
    r = reader(edition)
    tab = r.open(page)
    images = tab.evaluate(FIGURES_JS)
    small = []
    for i in images:
        if not i["natural"] or not i["dpi"]:
            continue
        per_point = i["shown"] / (i["natural"] / i["dpi"] * 72)
        if per_point < MIN_PX_PER_POINT - 1e-3:
            small.append(f"{i['name']} ({i['src'][-30:]}): {per_point:.2f} px/pt, shown at {i['shown'] / i['natural']:.0%}")
    figures_without_dpi = [i["name"] for i in images if i["natural"] > 50 and not i["dpi"] and i["name"] != "player"]
    overflow = tab.evaluate(OVERFLOW_JS)["bad"]
    backslashes = tab.evaluate(MATH_BACKSLASH_JS)
    problems = ([f"shown too small: {small}"] if small else []) + \
               ([f"figures that do not record their dpi: {figures_without_dpi}"] if figures_without_dpi else []) + \
               ([f"overflows the column: {overflow[:6]}"] if overflow else []) + \
               ([f"a backslash in typeset math: {backslashes[:4]}"] if backslashes else [])
    assert not problems, f"{page}: " + "; ".join(problems)


def test_the_legibility_checks_are_not_vacuous(reader):
    """The same checks catch a figure squeezed to half its size, a table wider than the column,
    and a formula with an unknown command's backslash."""
    r = reader()
    tab = r.open("book/02_nearest_neighbour")
    images = [i for i in tab.evaluate(FIGURES_JS) if i["dpi"]]
    assert images and all(abs(i["dpi"] - 110) < 1 for i in images), images[:2]
    tab.evaluate("""() => { const i = document.querySelector('article.bd-article figure img');
                            i.style.width = (i.naturalWidth * 0.4) + 'px';
                            const t = document.createElement('table'); t.innerHTML = '<tr><td>' + 'x'.repeat(400) + '</td></tr>';
                            t.style.whiteSpace = 'nowrap';
                            document.querySelector('article.bd-article section').appendChild(t); }""")
    shrunk = tab.evaluate(FIGURES_JS)[0]
    assert shrunk["shown"] / (shrunk["natural"] / shrunk["dpi"] * 72) < MIN_PX_PER_POINT
    assert any(b.startswith("table") for b in tab.evaluate(OVERFLOW_JS)["bad"])
    tab.evaluate("""async () => { const p = document.createElement('p'); p.className = 'math';
                                  p.textContent = '\\\\(x \\\\undefinedmacro\\\\)';
                                  document.querySelector('article.bd-article section').appendChild(p);
                                  await MathJax.typesetPromise([p]); }""")
    assert tab.evaluate(MATH_BACKSLASH_JS), "a formula showing a backslash was not caught"
