"""``python -m autograder.book``: the book's two editions."""

import sys

from . import main

sys.exit(main())
