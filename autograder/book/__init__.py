"""Build the book in one of its two editions.

    python -m autograder.book                      # instructor edition -> _build/html
    python -m autograder.book --edition student    # student edition    -> _build/student/_build/html
    python -m autograder.book --builder linkcheck  # (any edition) Sphinx's link checker

The **student edition** is `_toc.yml` and `_config.yml` exactly as they stand: the chapters and
the student notebooks (stubs, visible tests only). It is the one to publish to a class, and what
a plain `jupyter-book build .` makes, so that forgetting this module can never leak a solution.

The **instructor edition** adds a part "For instructors": a grading guide and every solution
notebook, with its solutions and hidden tests, shown unexecuted. Its table of contents and
configuration are derived from the student ones here, written next to the build output, so the
two editions cannot drift apart.

Both editions share one execution cache, so the second build executes nothing again.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import yaml

from ..paths import REPO
EDITIONS = ("instructor", "student")
INSTRUCTOR_PAGE = "book/instructors"


def assignments(repo: Path = REPO) -> list[str]:
    """The assignments of the checkout at ``repo`` (:func:`autograder.registry.assignments`)."""
    from ..registry import assignments as found

    return found(repo / "solutions")


def toc(edition: str, repo: Path = REPO) -> dict:
    """The table of contents of an edition, as a dict in jb-book format."""
    student = yaml.safe_load((repo / "_toc.yml").read_text())
    if edition == "student":
        return student
    part = {"caption": "For instructors",
            "chapters": [{"file": INSTRUCTOR_PAGE,
                          "sections": [{"file": f"solutions/{aid}/{aid}", "title": f"Solution: {aid}"}
                                       for aid in assignments(repo)]}]}
    return {**student, "parts": [*student["parts"], part]}


def config(edition: str, cache: Path, repo: Path = REPO, external_links: bool = False) -> dict:
    """The configuration of an edition: `_config.yml` plus the shared cache; the instructor
    edition also reads solutions/, and never executes a solution notebook. Without
    external_links, the link checker skips links to other sites (it checks the book's own)."""
    cfg = yaml.safe_load((repo / "_config.yml").read_text())
    cfg.setdefault("execute", {})["cache"] = str(cache)
    # The derived file lives under _build/: paths jupyter-book reads relative to it become absolute.
    local = cfg.get("sphinx", {}).get("local_extensions") or {}
    for name, path in local.items():
        local[name] = str((repo / path).resolve())
    # the intro's reading times, from the chapters' sources as they are now (see words.reading_substitutions)
    from .words import reading_substitutions

    cfg.setdefault("parse", {}).setdefault("myst_substitutions", {}).update(
        reading_substitutions(repo, toc("student", repo)))
    if not external_links:
        cfg.setdefault("sphinx", {}).setdefault("config", {})["linkcheck_ignore"] = [r"^https?://"]
    if edition == "instructor":
        cfg["exclude_patterns"] = [p for p in cfg["exclude_patterns"] if p != "solutions"]
        cfg["execute"]["exclude_patterns"] = [*cfg["execute"].get("exclude_patterns", []),
                                              "solutions/*/*.ipynb"]
        cfg["title"] = f"{cfg['title']} (instructor edition)"
    return cfg


def pages(edition: str, repo: Path = REPO) -> list[str]:
    """Every page of an edition in reading order (what next/previous walks through)."""
    out: list[str] = []

    def walk(entries):
        for e in entries:
            out.append(e["file"])
            walk(e.get("sections", []))

    t = toc(edition, repo)
    out.append(t["root"])
    for part in t["parts"]:
        walk(part["chapters"])
    return out


def chapters(t: dict) -> list[dict]:
    """The chapter entries of a table of contents ``t`` (its "Chapters" part), in order, each with its sections."""
    return [c for part in t["parts"] if part.get("caption") == "Chapters" for c in part["chapters"]]


def chapter_pages(repo: Path = REPO) -> list[str]:
    """The chapters' own pages (the TOC's "Chapters" part, not their exercise sections), in order."""
    return [c["file"] for c in chapters(toc("student", repo))]


def default_out(edition: str, repo: Path = REPO, builder: str = "html") -> Path:
    """The output root when none is given: the checkout (instructor), _build/student, or _build/linkcheck."""
    if builder == "linkcheck":
        return repo / "_build" / "linkcheck"
    return repo if edition == "instructor" else repo / "_build" / "student"


def report_dir(out: Path) -> Path:
    """Where a build under `out` leaves its pages, or the link checker its report: jupyter-book
    writes both to <out>/_build/html."""
    return Path(out) / "_build" / "html"


def build(edition: str, out: Path | None = None, cache: Path | None = None, builder: str = "html",
          repo: Path = REPO, external_links: bool = False, quiet: bool = False) -> subprocess.CompletedProcess:
    """Run jupyter-book for one edition; the HTML (or the link report) lands in report_dir(out)."""
    if edition not in EDITIONS:
        raise ValueError(f"unknown edition {edition!r}; choose one of {', '.join(EDITIONS)}")
    out = Path(out or default_out(edition, repo, builder)).resolve()
    cache = Path(cache or repo / "_build" / ".jupyter_cache").resolve()
    spec = out / "_build" / f"_edition_{edition}"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "_toc.yml").write_text("# Generated by autograder/book.py from _toc.yml: do not edit.\n"
                                   + yaml.safe_dump(toc(edition, repo), sort_keys=False))
    (spec / "_config.yml").write_text("# Generated by autograder/book.py from _config.yml: do not edit.\n"
                                      + yaml.safe_dump(config(edition, cache, repo, external_links), sort_keys=False))
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb), "build", str(repo), "--path-output", str(out), "--builder", builder,
           "--config", str(spec / "_config.yml"), "--toc", str(spec / "_toc.yml"),
           "--warningiserror", "--nitpick", "--keep-going"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(cmd, cwd=repo, env=env, text=True,
                          capture_output=quiet, timeout=3600)


def main(argv=None) -> int:
    """``python -m autograder.book``: build one edition (or check its links) and say where the result is."""
    ap = argparse.ArgumentParser(prog="python -m autograder.book", description=__doc__.split("\n\n")[0])
    ap.add_argument("--edition", choices=EDITIONS, default="instructor")
    ap.add_argument("--out", type=Path, help="output root (the HTML goes to OUT/_build/html)")
    ap.add_argument("--builder", default="html", choices=["html", "linkcheck"])
    ap.add_argument("--external", action="store_true",
                    help="linkcheck only: also check links to other sites (needs the internet)")
    args = ap.parse_args(argv)
    proc = build(args.edition, args.out, builder=args.builder, external_links=args.external)
    where = report_dir(args.out or default_out(args.edition, builder=args.builder))
    if args.builder == "linkcheck":
        print(f"Link report: {where / 'output.txt'}" + ("" if args.external else
              " (links to other sites skipped; LINKCHECK_EXTERNAL=1 / --external checks them too)"))
    elif proc.returncode == 0:
        print(f"The {args.edition} edition is in {where / 'index.html'}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
