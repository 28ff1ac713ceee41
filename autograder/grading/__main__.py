"""``python -m autograder.grading``: the ``make grade`` command (see :mod:`autograder.grading.cli`)."""

import sys

from .cli import main

sys.exit(main())
