"""The JSON Schema of Gradescope's ``results.json``, and ``validate_results`` for other tests.

The schema (``tests/gradescope_results.schema.json``) is written from Gradescope's autograder
specification, https://gradescope-autograders.readthedocs.io/en/latest/specs/ (and its leaderboards
page), read 2026-11-30. These tests check that the schema is itself a valid draft 2020-12 schema,
that it accepts a realistic results file, and that it rejects each kind of malformed one, so a
test that calls ``validate_results`` can fail.

Other tests import the helper the way they import ``wrong_kernels``: ``tests/`` is on ``sys.path``
through ``pythonpath = ["tests"]`` in pyproject.toml::

    from test_gradescope_schema import validate_results
"""

from __future__ import annotations

import copy
import functools
import json
import math
from pathlib import Path

import jsonschema
import pytest
from jsonschema import Draft202012Validator, ValidationError

SCHEMA_PATH = Path(__file__).with_name("gradescope_results.schema.json")


@functools.cache
def _validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validate_results(data: dict) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``data`` is a valid Gradescope results.json.

    ``data`` is checked as it would be written: it must serialise as strict JSON (no NaN or
    infinity, no objects ``json`` cannot write), and it is round-tripped through ``json`` first,
    so a tuple counts as the array it becomes. The error raised is the most relevant one.
    """
    try:
        text = json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"results are not strict JSON: {exc}") from exc
    error = jsonschema.exceptions.best_match(_validator().iter_errors(json.loads(text)))
    if error is not None:
        raise error


VALID = {
    "execution_time": 12.5,
    "output": "Chapter 1: 1 of 2 checks passed.",
    "output_format": "md",
    "test_output_format": "text",
    "test_name_format": "text",
    "visibility": "visible",
    "stdout_visibility": "hidden",
    "extra_data": {"assignment": "ch01_cnn_size"},
    "tests": [
        {
            "score": 2.0,
            "max_score": 2.0,
            "status": "passed",
            "name": "conv2d_output_size matches the formula",
            "number": "1.1",
            "output": "",
            "tags": ["ch01", "size"],
            "visibility": "visible",
        },
        {
            "score": 0,
            "max_score": 3,
            "status": "failed",
            "name": "conv2d on hidden shapes",
            "name_format": "text",
            "number": "1.2",
            "output": "Wrong output for stride=2, padding=1.",
            "output_format": "text",
            "visibility": "hidden",
            "extra_data": {"case": 7},
        },
    ],
    "leaderboard": [{"name": "Runtime (s)", "value": 0.84, "order": "asc"}],
}


def with_change(change) -> dict:
    """A deep copy of VALID with ``change`` applied to it."""
    data = copy.deepcopy(VALID)
    change(data)
    return data


def _set(path, value):
    def change(data):
        *parents, last = path
        target = data
        for key in parents:
            target = target[key]
        target[last] = value
    return change


def _delete(path):
    def change(data):
        *parents, last = path
        target = data
        for key in parents:
            target = target[key]
        del target[last]
    return change


def _chain(*changes):
    def change(data):
        for c in changes:
            c(data)
    return change



INVALID = {
    "top visibility secret": _set(("visibility",), "secret"),
    "test visibility secret": _set(("tests", 1, "visibility"), "secret"),
    "stdout_visibility shown": _set(("stdout_visibility",), "shown"),
    "score as a string": _set(("score",), "5"),
    "test score as a string": _set(("tests", 0, "score"), "2"),
    "max_score as a string": _set(("tests", 0, "max_score"), "2"),
    "score as a boolean": _set(("score",), True),
    "execution_time as a string": _set(("execution_time",), "12s"),
    "output not a string": _set(("output",), ["line 1", "line 2"]),
    "tests not a list": _set(("tests",), {"score": 2.0, "max_score": 2.0}),
    "a test not an object": _set(("tests", 0), "passed"),
    "test status ok": _set(("tests", 0, "status"), "ok"),
    "test number as a number": _set(("tests", 0, "number"), 1.1),
    "tags not strings": _set(("tests", 0, "tags"), ["ch01", 1]),
    "tags a string": _set(("tests", 0, "tags"), "ch01"),
    "extra_data a list": _set(("extra_data",), []),
    "test extra_data a string": _set(("tests", 1, "extra_data"), "case 7"),
    "no top score, a test with neither score nor status": _chain(
        _delete(("tests", 1, "score")), _delete(("tests", 1, "status"))),
    "leaderboard entry without value": _delete(("leaderboard", 0, "value")),
    "leaderboard entry without name": _delete(("leaderboard", 0, "name")),
    "leaderboard value a list": _set(("leaderboard", 0, "value"), [0.84]),
    "leaderboard order up": _set(("leaderboard", 0, "order"), "up"),
    "leaderboard not a list": _set(("leaderboard",), {"name": "Runtime (s)", "value": 0.84}),
    "output_format pdf": _set(("output_format",), "pdf"),
    "test_output_format pdf": _set(("test_output_format",), "pdf"),
    "test_name_format rst": _set(("test_name_format",), "rst"),
    "test output_format pdf": _set(("tests", 1, "output_format"), "pdf"),
    "test name_format latex": _set(("tests", 1, "name_format"), "latex"),
    "neither score nor tests": _delete(("tests",)),
    "score is NaN": _set(("score",), math.nan),
}


def test_the_schema_is_a_valid_draft_2020_12_schema():
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "gradescope-autograders.readthedocs.io/en/latest/specs/" in schema["$comment"]
    assert "gradescope-autograders.readthedocs.io/en/latest/specs/" in schema["description"]


def test_a_realistic_results_file_is_valid():
    assert "score" not in VALID  # the tests carry the score
    validate_results(VALID)


@pytest.mark.parametrize("data", [
    {"score": 44.0},
    {"score": 0, "tests": []},
    {"score": 5.0, "tests": [{"name": "compiles", "output": "ok"}]},  # the top score covers the tests
    {"tests": [{"score": 1, "max_score": 1}]},
    # The spec's 'Test case status' example: informational checks without scores.
    {"tests": [{"name": "Compilation check", "status": "passed"},
               {"name": "Style check", "status": "failed"},
               {"name": "Test 3", "score": 5, "max_score": 10, "status": "passed"}]},
    # The spec's leaderboard example, and a key the spec does not name.
    {"score": 1, "leaderboard": [{"name": "Accuracy", "value": .926},
                                 {"name": "Time", "value": 15.1, "order": "asc"},
                                 {"name": "Stars", "value": "*****"}],
     "not_in_the_spec": [1, 2]},
    with_change(_set(("score",), 2.0)),
    with_change(_set(("tests", 0, "tags"), ("ch01", "size"))),  # a tuple is written as an array
], ids=["score only", "score, no tests", "score, unscored test", "tests only", "status checks",
        "leaderboard and an unknown key", "both", "tuple tags"])
def test_other_valid_results(data):
    validate_results(data)


@pytest.mark.parametrize("change", list(INVALID.values()), ids=list(INVALID))
def test_an_invalid_results_file_is_rejected(change):
    data = with_change(change)
    with pytest.raises(ValidationError):
        validate_results(data)


def test_not_json_serialisable_is_a_validation_error():
    with pytest.raises(ValidationError, match="strict JSON"):
        validate_results(with_change(_set(("extra_data",), {"when": object()})))


def test_the_error_names_the_offending_field():
    with pytest.raises(ValidationError) as info:
        validate_results(with_change(_set(("tests", 1, "visibility"), "secret")))
    assert list(info.value.absolute_path) == ["tests", 1, "visibility"]
