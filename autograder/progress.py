"""``make check``: a learner's progress through the course, at a glance.

Runs the visible checks of every notebook under a folder (default
``notebooks/``) on a copy, so the learner's files are never changed, and
prints one row per graded exercise:

    chapter · exercise · points · passed / failed (one-line reason) / not yet attempted

Hidden tests are not run: they decide grades, and they are not in a learner's
notebook.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from . import notebooks as nbs

#: The error a check raises when the learner's function calls a helper of theirs that is still a stub.
HELPER_STUB = "HelperNotImplemented"

SYMBOLS = {"passed": "✔ passed", "failed": "✘ failed", "not attempted": "· not yet attempted"}


@dataclass
class Row:
    """One row of the progress table: a graded exercise, its points and its status."""
    chapter: str
    exercise: str
    points: float
    status: str
    reason: str = ""


def collect(paths, timeout: int = 300, progress: bool = True) -> list[Row]:
    """Run each notebook's visible checks on a copy; one row per graded exercise."""
    rows: list[Row] = []
    iterator = paths
    if progress:
        from tqdm import tqdm
        iterator = tqdm(paths, desc="running visible checks", unit="notebook", file=sys.stderr)
    for path in iterator:
        path = Path(path)
        try:
            nb = nbs.read(path)
        except Exception as e:  # noqa: BLE001 - a broken notebook is a row, not a crash
            rows.append(Row(path.parent.name, "(whole notebook)", 0, "failed", f"cannot read it: {e}"))
            continue
        chapter = _chapter(nbs.title(nb, path.parent.name))
        graded = nbs.graded_cells(nb)
        if not graded:
            continue
        try:
            done = nbs.execute(nb, path.parent, timeout=timeout)
        except Exception as e:  # noqa: BLE001 - e.g. a cell timed out: report it on every row
            for g in graded:
                rows.append(Row(chapter, _label(g.grade_id), g.points, "failed",
                                f"the notebook did not finish: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"))
            continue
        for g in graded:
            o = nbs.outcome(done.cells[g.index])
            # An exercise written but calling a helper that is still a stub failed (the reason names the
            # helper): it is attempted, not "not yet attempted".
            reason = o.reason.removeprefix(f"{HELPER_STUB}: ")
            rows.append(Row(chapter, _label(g.grade_id), g.points, o.status, reason))
    return rows


def discover(path) -> list[Path]:
    """The notebooks ``make check NOTEBOOKS=...`` names: one ``.ipynb`` file; a chapter's folder (its own
    notebooks); or a folder of chapters (``<chapter>/*.ipynb``, the nbgrader layout). Checkpoints are skipped."""
    path = Path(path)
    if path.is_file():
        return [path] if path.suffix == ".ipynb" else []
    own = sorted(p for p in path.glob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    return own or nbs.find_notebooks(path)


def _chapter(title: str) -> str:
    """"Chapter 1 exercises — the CNN size problem" -> "1. the CNN size problem"."""
    m = re.match(r"Chapter (\d+) exercises\s*[—-]\s*(.+)", title)
    return f"{m.group(1)}. {m.group(2)}" if m else title


def _label(grade_id: str) -> str:
    return grade_id[len("test_"):] if grade_id.startswith("test_") else grade_id


def render(rows: list[Row]) -> str:
    """The progress table as text, with a closing line of totals."""
    if not rows:
        return "No graded notebooks found."
    w_ch = max(len("chapter"), *(len(r.chapter) for r in rows))
    w_ex = max(len("exercise"), *(len(r.exercise) for r in rows))
    lines = [f"{'chapter':<{w_ch}}  {'exercise':<{w_ex}}  points  status", "-" * (w_ch + w_ex + 30)]
    last = None
    for r in rows:
        chapter = r.chapter if r.chapter != last else ""
        last = r.chapter
        status = SYMBOLS[r.status] + (f" — {r.reason}" if r.reason and r.status == "failed" else "")
        lines.append(f"{chapter:<{w_ch}}  {r.exercise:<{w_ex}}  {r.points:>6g}  {status}")
    total = sum(r.points for r in rows)
    passed = sum(r.points for r in rows if r.status == "passed")
    todo = sum(1 for r in rows if r.status == "not attempted")
    failed = sum(1 for r in rows if r.status == "failed")
    lines.append("-" * (w_ch + w_ex + 30))
    lines.append(f"{passed:g} of {total:g} points pass their visible checks; "
                 f"{failed} exercise(s) failing, {todo} not yet attempted. "
                 "(Hidden tests decide the grade.)")
    return "\n".join(lines)


def main(argv=None) -> int:
    """``make check``: print the progress table of the notebooks under a folder."""
    parser = argparse.ArgumentParser(prog="make check", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", default="notebooks",
                        help="notebooks/ (every chapter), one chapter's folder, or one notebook (default: notebooks)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds a cell may run (default 300)")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    if not folder.exists():
        print(f"error: {folder} is not a folder of notebooks", file=sys.stderr)
        return 2
    paths = discover(folder)
    if not paths:
        print(f"error: no notebooks found in {folder} (give notebooks/, a chapter's folder such as "
              f"notebooks/ch06_transposed_conv, or one .ipynb file)", file=sys.stderr)
        return 2
    rows = collect(paths, timeout=args.timeout)
    print(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
