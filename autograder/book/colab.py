"""The Colab install cell: the first code cell of every exercise notebook.

Google Colab opens ``notebooks/<aid>/<aid>.ipynb`` straight from the course's repository, without
the course's checking package. The cell installs it there, from ``repository.url`` and ``branch``
in ``_config.yml``; anywhere else (a clone with ``make lab``, the grader's sandbox, the tests) it
does nothing. It is plain Python, not ``%pip``, because the grader runs cells outside IPython.

After changing the repository or branch in ``_config.yml`` (a fork, say):

    python -m autograder.book.colab    # rewrite the cell in solutions/*/*.ipynb
    make release                  # regenerate notebooks/ from them
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..paths import REPO
CELL_ID = "colab_install"  # the cell's id and nbgrader grade_id: locked, neither graded nor a solution
PLACEHOLDER = "<REQUIREMENT>"

TEMPLATE = '''\
# Google Colab only: install the course's checking package. Elsewhere this cell does nothing.
# In Colab, pick a GPU first (Runtime → Change runtime type) so the checks run on CUDA too.
import sys

if "google.colab" in sys.modules:
    import importlib
    import os
    import subprocess

    # --no-deps: keep Colab's own torch (a CUDA build), numpy, matplotlib and tqdm.
    package = os.environ.get(
        "COURSE_PACKAGE",  # set it to install from elsewhere: a fork, another branch, a folder
        "<REQUIREMENT>",
    )
    print("Installing", package)
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", package],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        raise RuntimeError(f"pip could not install {package!r}:\\n{pip.stdout[-1500:]}{pip.stderr[-1500:]}")
    importlib.invalidate_caches()  # so that the next cell finds it

    import torch
    print("Done. GPU:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else
          "none, the checks run on the CPU only (Runtime → Change runtime type)")'''


def published_repository(repo: Path = REPO) -> tuple[str, str]:
    """(url, branch) of the course's public repository, from _config.yml's ``repository``: what
    the install cell and the book's Colab launch buttons point at."""
    import yaml  # PyYAML comes with jupyter-book (the [dev] extra)

    config = yaml.safe_load((repo / "_config.yml").read_text(encoding="utf-8"))["repository"]
    return str(config["url"]).rstrip("/").removesuffix(".git"), str(config.get("branch") or "main")


def release_tag(repo: Path = REPO) -> str:
    """The git tag of this version of the course, ``v<version>`` (pyproject.toml's version): what learners
    install, so that a change to the checks mid-term never changes what a half-done notebook is checked against."""
    import tomllib

    return "v" + tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


def requirement(repo: Path = REPO) -> str:
    """``<distribution> @ git+<repository url>.git@v<version>``, from pyproject.toml and _config.yml."""
    import tomllib

    name = tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"]
    url, _ = published_repository(repo)
    return f"{name} @ git+{url}.git@{release_tag(repo)}"


def cell_source(repo: Path = REPO) -> str:
    """The install cell's code, with the course package's requirement filled in."""
    return TEMPLATE.replace(PLACEHOLDER, requirement(repo))


def put_cell(nb, source: str) -> None:
    """Make the install cell the notebook's first code cell, with this source (added, or moved and updated)."""
    import nbformat

    existing = [c for c in nb.cells if c.get("id") == CELL_ID]
    cell = existing[0] if existing else nbformat.v4.new_code_cell(source)
    if existing:
        nb.cells.remove(cell)
    cell.id = CELL_ID
    cell.source = source
    cell.outputs, cell.execution_count = [], None  # committed without outputs
    cell.metadata["nbgrader"] = {"grade": False, "grade_id": CELL_ID, "locked": True, "schema_version": 3,
                                 "solution": False, "task": False}
    # Before the first code cell: after the intro (whose points table the tests read as cells[0]).
    first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
    nb.cells.insert(first_code, cell)


README_BEGIN = "<!-- exercises: written by `make release` (autograder/book/colab.py) -->"
README_END = "<!-- end of exercises -->"


def readme_table(repo: Path = REPO) -> str:
    """The README's table of exercise notebooks: one row per assignment, titled by its chapter's page (the TOC
    entry whose section is the notebook), with its Colab link."""
    import yaml

    url, branch = published_repository(repo)
    github = url.removeprefix("https://github.com/")
    toc = yaml.safe_load((repo / "_toc.yml").read_text(encoding="utf-8"))
    rows = ["| chapter | notebook | Colab |", "|---|---|---|"]
    for part in toc["parts"]:
        for chapter in part["chapters"]:
            for section in chapter.get("sections", []):
                if not section["file"].startswith("notebooks/"):
                    continue
                page = (repo / chapter["file"]).with_suffix(".md")
                title = next(line[2:].strip() for line in page.read_text(encoding="utf-8").splitlines()
                             if line.startswith("# "))
                notebook = f"{section['file']}.ipynb"
                rows.append(f"| {title} | `{notebook}` | [open in Colab](https://colab.research.google.com/github/"
                            f"{github}/blob/{branch}/{notebook}) |")
    return "\n".join(rows)


def readme_text(repo: Path = REPO) -> str:
    """README.md with its table of exercise notebooks rewritten (between the two markers)."""
    text = (repo / "README.md").read_text(encoding="utf-8")
    head, _, rest = text.partition(README_BEGIN + "\n")
    _, found, tail = rest.partition(README_END)
    if not found:
        raise ValueError(f"README.md lacks the markers {README_BEGIN!r} ... {README_END!r}")
    return f"{head}{README_BEGIN}\n{readme_table(repo)}\n{README_END}{tail}"


def main() -> int:
    """Rewrite what follows from _config.yml and the TOC: the install cell of every solution notebook, and the
    README's table of exercise notebooks. (`make release` runs this first.)"""
    import nbformat

    readme = readme_text()
    if readme != (REPO / "README.md").read_text(encoding="utf-8"):
        (REPO / "README.md").write_text(readme, encoding="utf-8")
        print("updated README.md (its table of exercise notebooks)")
    source, changed = cell_source(), 0
    for path in sorted((REPO / "solutions").glob("*/*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        before = nbformat.writes(nb)
        put_cell(nb, source)
        if nbformat.writes(nb) != before:
            nbformat.write(nb, str(path), version=4)
            changed += 1
            print(f"updated {path.relative_to(REPO)}")
    print("Now run `make release` to regenerate notebooks/." if changed else "The install cells are up to date.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
