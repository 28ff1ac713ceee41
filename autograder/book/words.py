"""Words of prose on a built page, as a reader meets them: the article's text without code, math, captions,
tables or cell outputs (the measure of a page's length: no page of the book runs over :data:`PAGE_LIMIT`).

    python -m autograder.book.words _build/html       every page's count, longest first, and the core path's
"""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path

PAGE_LIMIT = 4000

#: Prose words of each chapter's page before the chapters were split into a core page and deep dives: Chapters 1
#: and 6-9 as counted when the split began, Chapters 2-5 (which then still held everything) as counted just before
#: theirs. The core path, the chapter pages a learner reads in order, reads in at most half of their total.
CORE_BEFORE_SPLIT = {"01_cnn_size_problem": 1111, "02_nearest_neighbour": 1907, "03_bed_of_nails": 2024,
                     "04_bilinear": 2665, "05_max_unpooling": 2279, "06_transposed_convolution": 4752,
                     "07_checkerboard": 3199, "08_encoder_decoder": 2062, "09_making_it_fast": 820}
CORE_PATH_LIMIT = sum(CORE_BEFORE_SPLIT.values()) // 2

#: Elements whose text is not prose: code, typeset math, figure captions, tables, cell outputs, navigation.
_SKIP_TAGS = {"pre", "script", "style", "figcaption", "table", "nav", "mjx-container", "math", "svg", "button"}
_SKIP_CLASSES = ("math", "highlight", "cell_output", "cell_input", "headerlink", "caption", "toctree-wrapper",
                 "prev-next-area", "admonition-title")
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Prose(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth_article = 0   # inside the article
        self.skip = 0            # inside something that is not prose
        self.stack: list[tuple[str, bool, bool]] = []
        self.words: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in _VOID:
            return
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        article = tag == "article" or a.get("role") == "main"
        skip = tag in _SKIP_TAGS or any(c == k or c.startswith(k + "-") or c.startswith(k + "_") for c in classes
                                        for k in _SKIP_CLASSES)
        self.stack.append((tag, article, skip))
        self.depth_article += article
        self.skip += skip

    def handle_endtag(self, tag):
        if tag in _VOID:
            return
        while self.stack:
            t, article, skip = self.stack.pop()
            self.depth_article -= article
            self.skip -= skip
            if t == tag:
                break

    def handle_data(self, data):
        if self.depth_article and not self.skip:
            self.words += re.findall(r"[A-Za-z0-9][\w'’.,-]*", re.sub(r"\\\(.*?\\\)|\$[^$]*\$", " ", data))


def prose_words(html: str) -> int:
    """The number of prose words in a built page's article."""
    p = _Prose()
    p.feed(html)
    return len(p.words)


def core_pages(toc: dict) -> list[str]:
    """The core path: each chapter's own page (``book/<name>.html``) of a table of contents, in order, without
    its sections (the deep dives and the exercises)."""
    from . import chapters

    return [f"{chapter['file']}.html" for chapter in chapters(toc)]


#: Words a minute for studying this book's prose with its figures, formulas and tables: about a quarter of the
#: ~230 words a minute of ordinary reading, since each figure and formula takes its own minute. The intro's
#: reading times divide by it.
READING_WPM = 60

_FENCE = re.compile(r"^(`{3,}|~{3,})[^\n]*\n.*?^\1[ \t]*$", re.S | re.M)
_SOURCE_NOISE = [re.compile(p, flags) for p, flags in (
    (r"\A---\n.*?\n---\n", re.S),           # front matter
    (r"<!--.*?-->", re.S),                     # comments
    (r"\$\$.*?\$\$", re.S),                    # display math
    (r"\$[^$\n]+\$", 0),                      # inline math
    (r"^\|.*\|[ \t]*$", re.M),                 # table rows
    (r"^\([\w-]+\)=[ \t]*$", re.M),            # labels
    (r"^:[\w-]+:.*$", re.M),                   # directive options
)]


#: Fenced directives whose body is prose on the page (an admonition's title is not counted, its body is).
_PROSE_FENCES = ("{admonition}", "{note}", "{warning}", "{tip}", "{important}", "{hint}", "{seealso}")


def _fence(match: re.Match) -> str:
    head, _, rest = match.group(0).partition("\n")
    if head.lstrip("`~").startswith(_PROSE_FENCES):
        return rest.rsplit("\n", 1)[0]      # the body (its options go with the other directive options below)
    return " "


def source_words(text: str) -> int:
    """Prose words of a MyST page's source: an estimate of :func:`prose_words` before the page is built (code
    cells, figures and other fenced directives with their captions, math, tables and labels left out; an
    admonition's body kept; a role counts as its text, inline code as one word)."""
    text = _FENCE.sub(_fence, text)
    for pattern in _SOURCE_NOISE:
        text = pattern.sub(" ", text)
    text = re.sub(r"\{[\w:-]+\}`([^`<]*?)(?:<[^`]*>)?`", r"\1", text)   # {doc}`title <target>` -> title
    text = re.sub(r"`[^`]*`", "code", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)            # [text](link) -> text
    return len(re.findall(r"[A-Za-z0-9][\w'’.,-]*", text))


def reading_minutes(repo: Path, toc: dict) -> dict[str, tuple[int, int]]:
    """For each chapter of ``toc`` (its file, e.g. ``book/06_transposed_convolution``): minutes to read its own
    page and minutes to read its deep dives (its sections that are book pages, not exercise notebooks), from the
    sources, at :data:`READING_WPM`."""
    def minutes(files):
        words = sum(source_words((repo / f"{f}.md").read_text(encoding="utf-8")) for f in files)
        return max(5, round(words / READING_WPM / 5) * 5) if words else 0

    from . import chapters

    out = {}
    for chapter in chapters(toc):
        dives = [s["file"] for s in chapter.get("sections", []) if s["file"].startswith("book/")]
        out[chapter["file"]] = (minutes([chapter["file"]]), minutes(dives))
    return out


def duration(minutes: int) -> str:
    """``95`` -> ``"1 h 35 min"``."""
    hours, rest = divmod(minutes, 60)
    return " ".join(part for part in (f"{hours} h" if hours else "", f"{rest} min" if rest else "") if part)


def reading_substitutions(repo: Path, toc: dict) -> dict[str, str]:
    """The intro's reading times as MyST substitutions: ``read_<page stem>`` (core, then deep dives) and
    ``reading_wpm``. They go into each build's configuration (``autograder.book.config``), so they follow the
    chapters' sources at every build; computed in a page's code cell, they would stay as the execution cache
    last saw them."""
    subs = {f"read_{chapter.split('/')[-1]}": duration(core) + (f" + {duration(dives)}" if dives else "")
            for chapter, (core, dives) in reading_minutes(repo, toc).items()}
    return {**subs, "reading_wpm": str(READING_WPM)}


def page_counts(root: Path) -> dict[str, int]:
    """Every built page under ``root`` (an HTML output folder): its prose words."""
    return {str(f.relative_to(root)): prose_words(f.read_text(encoding="utf-8"))
            for f in sorted(Path(root).rglob("*.html")) if "_static" not in f.parts and "_sources" not in f.parts}


if __name__ == "__main__":
    counts = page_counts(Path(sys.argv[1] if len(sys.argv) > 1 else "_build/html"))
    for page, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"{n:6d}  {page}{'   over the limit' if n > PAGE_LIMIT else ''}")
    from . import toc

    core = sum(counts.get(page, 0) for page in core_pages(toc("student")))
    print(f"{core:6d}  the core path (the chapter pages; at most {CORE_PATH_LIMIT}, half of "
          f"{sum(CORE_BEFORE_SPLIT.values())} before the split)")
