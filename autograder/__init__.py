"""Checking and grading library of the course *Upsampling & Transposed Convolutions*.

One library serves two audiences:

* learners, through the visible checks called from the exercise notebooks
  (``from autograder.ch01 import check_conv2d``), which print what passed and
  raise a :class:`CheckFailure` with a learner-facing explanation otherwise;
* instructors, through the hidden tests in ``solutions/`` that call the same
  checks on a hidden suite of cases, and through nbgrader (``nbgrader_config.py``).

Modules, one job each. What a learner installs (the Colab cell):

``chNN``       one module per chapter: its checks (declared as :mod:`contract` objects), cases,
               references and the known mistakes the diagnostics recognise;
``contract``   what a check is: ``GradedCheck`` and ``CaseCheck`` (which makes each ``check_*``);
``registry``   every check, discovered in the chapter modules; which assignment uses which;
``_cases``     what a check is made of: exercises, cases, tensors, tolerances, devices;
``_core``      the check engine: runs and judges the cases, words the report;
``_rules``     forbids named torch operators at the dispatcher level;
``_policy``    the static source review (visible checks warn; the grader zeroes);
``_arith``     output-size formulas and the diagnosis of a wrong size;
``notebooks``  reading graded cells out of nbgrader notebooks;
``progress``   ``make check``: a learner's progress table;
``paths``      the repository's layout, in one place.

In the repository only (not in a learner's install):

``grading``    ``make grade``: intake, sandbox, zygote, grader and worker, nbgrader, CSV, feedback;
``book``       the book's two editions and their builds, its figures, animations and Colab cell;
``bench``      ``make bench``: timings as ratios against baselines measured side by side.
"""

__all__ = ["CheckFailure", "NotAttempted", "RuleViolation"]
__version__ = "0.3.0"


def __getattr__(name):
    # Loaded on first use: importing the package alone does not import torch (so `make grade` can start
    # nbgrader's set-up while torch loads), and `from autograder import CheckFailure` works as ever.
    if name in __all__:
        from . import _core

        return getattr(_core, name)
    raise AttributeError(f"module 'autograder' has no attribute {name!r}")
