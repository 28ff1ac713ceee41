"""Checking and grading library of the course *Upsampling & Transposed Convolutions*.

One library serves two audiences:

* learners, through the visible checks called from the exercise notebooks
  (``from autograder.ch01 import check_conv2d``), which print what passed and
  raise a :class:`CheckFailure` with a learner-facing explanation otherwise;
* instructors, through the hidden tests in ``solutions/`` that call the same
  checks on a hidden suite of cases, and through nbgrader (``nbgrader_config.py``).

Modules, one job each:

``_rules``     forbids named torch operators at the dispatcher level;
``_arith``     output-size formulas and the diagnosis of a wrong size;
``_core``      the check engine: cases, devices, dtypes, comparison, messages;
``chNN``       one module per chapter: its exercises' cases, references and
               the known mistakes the diagnostics recognise;
``figures``    plotting helpers shared by the book's chapters;
``animations`` the book's sliding / stamping animations (frames checked against torch);
``colab``      the Colab install cell, the first code cell of each exercise notebook;
``book``       the book's two editions (instructor, student) and their builds;
``notebooks``  reading graded cells out of nbgrader notebooks;
``progress``   ``make check``: a learner's progress table.
"""

__all__ = ["CheckFailure", "NotAttempted", "RuleViolation"]
__version__ = "0.1.0"


def __getattr__(name):
    # Loaded on first use: importing the package alone does not import torch (so `make grade` can start
    # nbgrader's set-up while torch loads), and `from autograder import CheckFailure` works as ever.
    if name in __all__:
        from . import _core

        return getattr(_core, name)
    raise AttributeError(f"module 'autograder' has no attribute {name!r}")
