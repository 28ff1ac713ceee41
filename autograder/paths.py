"""Where things are in the repository: the one place that knows its layout."""

from __future__ import annotations

import functools
from pathlib import Path

#: the checkout (in an installed copy, the folder above the package: the other paths may then not exist)
REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "autograder"
SOLUTIONS = REPO / "solutions"      # the instructor notebooks: solutions/<aid>/<aid>.ipynb
NOTEBOOKS = REPO / "notebooks"      # the released student notebooks, same layout
BOOK = REPO / "book"                # the chapters' pages
BUILD = REPO / "_build"             # everything built (the book, bench.json)
TOC = REPO / "_toc.yml"
CONFIG = REPO / "_config.yml"


def solution_notebook(aid: str) -> Path:
    """The instructor notebook of assignment ``aid``."""
    return SOLUTIONS / aid / f"{aid}.ipynb"


def release_notebook(aid: str) -> Path:
    """The released student notebook of assignment ``aid``."""
    return NOTEBOOKS / aid / f"{aid}.ipynb"


@functools.cache
def course_version() -> str:
    """The version of the course's checks that grades are computed with: the package's version, and in a git
    checkout the commit (``git describe``: a tag where there is one, ``-dirty`` for uncommitted changes)."""
    import subprocess

    from . import __version__

    stamped = Path(__file__).with_name("_release.txt")  # a wheel built for grading records its checkout's version
    if stamped.is_file():
        return stamped.read_text(encoding="utf-8").strip()
    if not (REPO / ".git").exists():
        return __version__
    try:
        rev = subprocess.run(["git", "describe", "--tags", "--always", "--dirty"], cwd=REPO, capture_output=True,
                             text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        rev = ""
    return f"{__version__}+{rev}" if rev else __version__
