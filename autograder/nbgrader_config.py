"""nbgrader configuration of the course, declared once.

Used by ``make release`` (generate the student notebooks) and by the grading
commands, which override ``CourseDirectory.root`` to a private grading folder:

    nbgrader generate_assignment --config autograder/nbgrader_config.py ch01_cnn_size

Layout: ``solutions/<aid>/<aid>.ipynb`` (source) -> ``notebooks/<aid>/<aid>.ipynb``
(release). Grading state (the gradebook, submitted/, autograded/, feedback/)
lives in the git-ignored ``.grading/`` folder: it is student data.
"""

import os

c = get_config()  # noqa: F821 - injected by traitlets when nbgrader loads this file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRADING = os.path.join(REPO, ".grading")

c.CourseDirectory.root = REPO
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.submitted_directory = ".grading/submitted"
c.CourseDirectory.autograded_directory = ".grading/autograded"
c.CourseDirectory.feedback_directory = ".grading/feedback"
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(GRADING, "gradebook.db")
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", ".grading"]

# One stub everywhere (STYLE house rule 2).
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# A student who deletes a graded cell gets it back (scored), instead of an error.
c.OverwriteCells.add_missing_cells = True

# Generous but finite: a visible check takes seconds; loops that never end must not.
c.ExecutePreprocessor.timeout = 300
c.Execute.timeout = 300
