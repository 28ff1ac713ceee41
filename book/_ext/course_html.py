"""Sphinx hooks of the course's book (loaded through `sphinx.local_extensions` in _config.yml).

- **One copy of each script.** The browser test found that a fresh reader's console shows a script
  error on every page: the theme stack (jupyter-book 1.0 with sphinx-thebe) registers its inline
  Thebe settings twice, and the second `const THEBE_JS_URL` throws. Every page's script list is
  de-duplicated here, keeping the first copy in place.
- **The Colab install cell collapsed.** Every exercise notebook starts with the cell that installs
  the checking package in Colab (`autograder.book.colab`, id `colab_install`). It matters in Colab
  only, so on the book's pages its code is collapsed (myst-nb's `hide-input`): one click shows it.
  The notebook file itself is not changed (the download button serves it as it is).
- **No figure without alt text.** A figure's image gets its caption as alt text when it has none
  (docutils would otherwise write the image's file name), so a screen reader says what it shows.
"""

from __future__ import annotations

import json
import re

from docutils import nodes

COLAB_CELL_ID = "colab_install"  # autograder.book.colab.CELL_ID (read there; kept here if that import fails)
ALT_MAX = 300                    # characters: a screen reader reads the whole caption after it anyway


def _unique_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if scripts:
        # The copies differ only in how "no file" is spelled (None or ""), so compare by content.
        seen, unique = set(), []
        for js in scripts:
            key = (js.filename or "", js.priority, tuple(sorted(js.attributes.items())))
            if key not in seen:
                seen.add(key)
                unique.append(js)
        # In place: later handlers (MathJax's, for one) append to this very list.
        scripts[:] = unique


def _cell_id() -> str:
    try:
        from autograder.book.colab import CELL_ID
        return CELL_ID
    except ImportError:  # pragma: no cover - the book is built from the course's own venv
        return COLAB_CELL_ID


def collapse_colab_cell(nb: dict, cell_id: str = COLAB_CELL_ID) -> bool:
    """Tag the notebook's install cell ``hide-input`` (in place); whether it found one."""
    found = False
    for cell in nb.get("cells", []):
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if cell.get("cell_type") == "code" and cell_id in (cell.get("id"), grade_id):
            tags = cell.setdefault("metadata", {}).setdefault("tags", [])
            if "hide-input" not in tags:
                tags.append("hide-input")
            found = True
    return found


def _collapse_colab_cell(app, docname, source):
    if not str(app.env.doc2path(docname)).endswith(".ipynb"):
        return
    try:
        nb = json.loads(source[0])
    except ValueError:
        return
    if collapse_colab_cell(nb, _cell_id()):
        source[0] = json.dumps(nb, ensure_ascii=False)


def alt_from_caption(caption: str) -> str:
    """A figure's caption as one line of alt text, cut at a sentence end near ALT_MAX characters."""
    text = re.sub(r"\s+", " ", caption).strip()
    if len(text) <= ALT_MAX:
        return text
    cut = text.rfind(". ", 0, ALT_MAX)
    return text[:cut + 1] if cut > 40 else text[:ALT_MAX].rsplit(" ", 1)[0] + " …"


def _alt_text_from_captions(app, doctree, docname):
    for figure in doctree.findall(nodes.figure):
        captions = [c for c in figure.findall(nodes.caption)]
        if not captions:
            continue
        alt = alt_from_caption(captions[0].astext())
        for image in figure.findall(nodes.image):
            if not image.get("alt") and alt:
                image["alt"] = alt


def setup(app):
    # Early: Sphinx stops calling html-page-context handlers after the first one that returns a value.
    app.connect("html-page-context", _unique_scripts, priority=100)
    app.connect("source-read", _collapse_colab_cell)
    app.connect("doctree-resolved", _alt_text_from_captions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
