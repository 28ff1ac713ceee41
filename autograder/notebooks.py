"""Reading and running nbgrader notebooks: graded cells, solution cells, outcomes."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import nbformat

NOT_ATTEMPTED_ERRORS = ("NotImplementedError", "NotAttempted")


@dataclass(frozen=True)
class GradedCell:
    """An autograded test cell: its grade id, points, index in the notebook and source."""
    grade_id: str
    points: float
    index: int
    source: str


def read(path) -> nbformat.NotebookNode:
    """A notebook file, read as nbformat version 4."""
    import nbformat  # about a second to import: only what reads notebooks through it pays

    return nbformat.read(str(path), as_version=4)


def cell_source(cell) -> str:
    """A cell's source as one string (JSON notebooks may store it as a list of lines)."""
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def nbgrader_meta(cell) -> dict:
    """A cell's nbgrader metadata ({} when it has none)."""
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def graded_cells(nb) -> list[GradedCell]:
    """Autograded test cells, in notebook order."""
    out = []
    for i, cell in enumerate(nb["cells"]):
        meta = nbgrader_meta(cell)
        if cell.get("cell_type") == "code" and meta.get("grade") and not meta.get("solution"):
            out.append(GradedCell(meta["grade_id"], float(meta.get("points", 0)), i, cell_source(cell)))
    return out


def solution_cells(nb) -> list[tuple[int, str, str]]:
    """(index, grade_id, source) of the cells learners write in."""
    return [(i, nbgrader_meta(c)["grade_id"], c.source) for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and nbgrader_meta(c).get("solution")]


def title(nb, default: str = "") -> str:
    """The notebook's first level-1 markdown heading, or ``default``."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", cell.source, flags=re.M)
            if m:
                return m.group(1).strip()
    return default


def execute(nb, cwd, timeout: int = 300, kernel_name: str = "python3"):
    """Run every cell (errors do not stop the run); return the executed copy."""
    import tempfile

    from jupyter_client import KernelManager
    from nbclient import NotebookClient

    import nbformat

    nb = nbformat.from_dict(nb)  # a copy: the learner's notebook is never modified
    with tempfile.TemporaryDirectory(prefix="course-kernel-") as sockets:
        # IPC transport: the kernel's sockets are files in a private folder, not open TCP ports.
        km = KernelManager(kernel_name=kernel_name, transport="ipc", ip=os.path.join(sockets, "kernel"))
        client = NotebookClient(nb, km=km, timeout=timeout, kernel_name=kernel_name, allow_errors=True,
                                resources={"metadata": {"path": os.fspath(cwd)}})
        try:
            client.execute()
        finally:  # a kernel manager we pass in is ours to shut down
            if km.has_kernel:
                km.shutdown_kernel(now=True)
    return nb


@dataclass(frozen=True)
class CellOutcome:
    """What an executed test cell says: its status and, when it failed, a one-line reason."""
    status: str  # "passed" | "failed" | "not attempted"
    reason: str = ""


def outcome(cell, width: int = 110) -> CellOutcome:
    """What an executed test cell says: passed, failed (one-line reason), or not attempted."""
    for out in cell.get("outputs", []):
        if out.get("output_type") != "error":
            continue
        ename, evalue = out.get("ename", ""), out.get("evalue", "")
        if ename in NOT_ATTEMPTED_ERRORS:
            return CellOutcome("not attempted", "still raises NotImplementedError")
        return CellOutcome("failed", _one_line(ename, evalue, width))
    if cell.get("execution_count") is None and cell.get("outputs") == []:
        return CellOutcome("not attempted", "not run")
    return CellOutcome("passed")


def _one_line(ename: str, evalue: str, width: int) -> str:
    lines = [ln.strip() for ln in evalue.splitlines() if ln.strip()]
    problem = next((ln[len("problem:"):].strip() for ln in lines if ln.startswith("problem:")), None)
    mistake = next((ln[len("likely mistake:"):].strip() for ln in lines if ln.startswith("likely mistake:")), None)
    text = mistake or problem or (lines[0] if lines else "")
    if ename not in ("CheckFailure", "RuleViolation", "AssertionError"):
        text = f"{ename}: {text}"
    return text if len(text) <= width else text[: width - 1] + "…"


def find_notebooks(root) -> list[Path]:
    """``<root>/<aid>/*.ipynb`` (the nbgrader layout), checkpoints skipped."""
    root = Path(root)
    return sorted(p for p in root.glob("*/*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def load_functions(path, skip_graded: bool = True) -> dict:
    """Execute a notebook's code cells (test cells skipped) in a fresh namespace; return it.

    Takes the instructor's reference functions out of ``solutions/`` for the project's tests, benchmarks and
    ``make test-cuda``, which runs with torch alone on an offline GPU machine: the notebook is read as plain
    JSON, never through nbformat, and each code cell runs as plain Python. Only a cell that is not plain Python
    (a magic, a shell escape) is translated by IPython, which must then be there. The Colab install cell
    (``autograder.book.colab``) runs too: it does nothing outside Colab."""
    import json

    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    ns: dict = {"__name__": f"notebook_{Path(path).stem}"}
    for cell in nb["cells"]:
        meta = nbgrader_meta(cell)
        if cell.get("cell_type") != "code" or (skip_graded and meta.get("grade")):
            continue
        source, where = cell_source(cell), f"<{Path(path).name}:{meta.get('grade_id', 'cell')}>"
        try:
            code = compile(source, where, "exec")
        except SyntaxError:
            from IPython.core.inputtransformer2 import TransformerManager

            code = compile(TransformerManager().transform_cell(source), where, "exec")
        exec(code, ns)
    return ns
