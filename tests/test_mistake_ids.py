"""Every known mistake has a stable id, and a failing check reports it.

A class report counts mistakes by ``Mistake.id``, never by the sentence a learner reads: the sentence may be
reworded, the id may not change. Both paths carry it: the visible check raises ``CheckFailure(...,
mistake=id)``, and the grader's ``CaseCheck.verdict`` raises the same id on the worker's record.
"""

from __future__ import annotations

import pickle

import pytest

from autograder import _core, ch01, ch05, ch06, registry
from autograder._cases import MISTAKE_ID, Exercise, Mistake
from autograder._core import CheckFailure, RuleViolation
from wrong_kernels import (NAMED, conv2d_with_bug, conv_transpose2d_scatter_with_bug, conv_transpose2d_with_bug,
                           max_pool_with_bug)

CASE_CHECKS = registry.case_checks()


# --------------------------------------------------------------------------
# The ids themselves


@pytest.mark.parametrize("check", CASE_CHECKS, ids=lambda c: c.check)
def test_every_mistake_of_every_exercise_has_a_valid_id_unique_within_its_exercise(check):
    ids = [m.id for m in check.exercise.mistakes]
    assert all(isinstance(i, str) and MISTAKE_ID.fullmatch(i) for i in ids), ids
    assert len(ids) == len(set(ids)), f"{check.check}: repeated mistake ids {ids}"


def test_the_chapters_declare_mistakes_at_all():
    assert sum(len(c.exercise.mistakes) for c in CASE_CHECKS) >= 40


@pytest.mark.parametrize("bad", [None, "", "Kernel-Flipped", "kernel_flipped", "kernel flipped", "kernel--flipped",
                                 "-kernel", "kernel-", "kernel-flipped\n", "ké"])
def test_a_mistake_without_a_valid_id_is_refused(bad):
    with pytest.raises(ValueError, match="needs an id"):
        Mistake("the kernel is flipped", lambda x: x, **({} if bad is None else {"id": bad}))


def test_a_mistake_with_an_id_is_built_and_keeps_it():
    m = Mistake("the kernel is flipped", lambda x: x, id="kernel-flipped")
    assert (m.name, m.id) == ("the kernel is flipped", "kernel-flipped")
    assert Mistake("x", lambda x: x, id="stride-2d").id == "stride-2d"


def test_an_exercise_refuses_two_mistakes_with_one_id():
    twice = (Mistake("one wording", lambda x: x, id="same"), Mistake("another wording", lambda x: -x, id="same"))
    with pytest.raises(ValueError, match="share the id 'same'"):
        Exercise(name="twice", reference=lambda x: x, mistakes=twice)


# --------------------------------------------------------------------------
# CheckFailure carries it


def test_check_failure_takes_an_optional_mistake_and_survives_pickling():
    assert CheckFailure("text").mistake is None and str(CheckFailure("text")) == "text"
    assert RuleViolation("text").mistake is None
    e = CheckFailure("text", mistake="kernel-flipped")
    assert (str(e), e.mistake) == ("text", "kernel-flipped")
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is CheckFailure and (str(back), back.mistake) == ("text", "kernel-flipped")


def test_a_passing_report_names_no_mistake():
    assert _core.Report("anything").named_mistake() is None


# --------------------------------------------------------------------------
# Known-wrong kernels: the visible check and the grader's verdict report the same id

def wrong(check, make, bug, words):
    """A WRONG row: the kernel with ``bug`` and the mistake id that wrong_kernels.NAMED gives it (None: no id)."""
    return check, make(bug), NAMED.get(f"check_{check.function}", {}).get(bug), words


WRONG = [
    # (check, wrong kernel, the id wrong_kernels.NAMED gives it, words of the likely-mistake line)
    wrong(ch01.CONV2D, conv2d_with_bug, "flipped", "likely mistake: the kernel is flipped"),
    wrong(ch01.CONV2D, conv2d_with_bug, "bias_ignored", "likely mistake: the bias is ignored"),
    # named on the "what N of the M failing outputs match" line, not as the shown failure's own mistake
    wrong(ch01.CONV2D, conv2d_with_bug, "kernel_transposed", "failing outputs match): the kernel's"),
    wrong(ch01.CONV2D, conv2d_with_bug, "groups_ignored", None),  # explained by the pattern line, no mistake
    # a hyper-parameter ignored is named wherever the parameter appears
    wrong(ch01.CONV2D, conv2d_with_bug, "padding_ignored", "likely mistake: padding ignored"),
    wrong(ch01.CONV2D, conv2d_with_bug, "stride_ignored", "likely mistake: stride ignored"),
    wrong(ch01.CONV2D, conv2d_with_bug, "dilation_ignored", "likely mistake: dilation ignored"),
    wrong(ch05.MAX_POOL2D_WITH_INDICES, max_pool_with_bug, "stride_one", "likely mistake: stride=None is taken as 1"),
    wrong(ch05.MAX_POOL2D_WITH_INDICES, max_pool_with_bug, "padding_ignored", "likely mistake: padding ignored"),
    wrong(ch06.CONV_TRANSPOSE2D, conv_transpose2d_with_bug, "not_flipped", "likely mistake: the kernel is not flipped"),
    wrong(ch06.CONV_TRANSPOSE2D, conv_transpose2d_with_bug, "padding_added", "padding is added instead of cropped"),
    wrong(ch06.CONV_TRANSPOSE2D, conv_transpose2d_with_bug, "bias_per_input_channel",
          "likely mistake: the bias is added once per input channel"),
    wrong(ch06.CONV_TRANSPOSE2D, conv_transpose2d_with_bug, "dilation_ignored", "dilation ignored — the kernel taps"),
    # the scatter-add route: the output size is right, the values are not
    wrong(ch06.CONV_TRANSPOSE2D, conv_transpose2d_scatter_with_bug, "dilation_in_stamp_ignored",
          "dilation ignored in the stamp"),
    wrong(ch06.CONV_TRANSPOSE2D, conv_transpose2d_scatter_with_bug, "groups_interleaved",
          "the output channels are interleaved across groups"),
    wrong(ch06.CONV_TRANSPOSE2D, conv_transpose2d_scatter_with_bug, "groups_swapped", "the group blocks are swapped"),
    wrong(ch06.CONV_TRANSPOSE2D, conv_transpose2d_scatter_with_bug, "output_padding_top_left",
          "output_padding is taken from the wrong side"),
]
WRONG_IDS = [f"{c.function}-{i or 'none'}" for c, _, i, _ in WRONG]


@pytest.mark.parametrize("check, fn, mistake, words", WRONG, ids=WRONG_IDS)
def test_the_visible_check_raises_the_named_mistake_s_id(check, fn, mistake, words):
    with pytest.raises(CheckFailure) as info:
        check.visible()(fn, quiet=True)
    assert info.value.mistake == mistake
    message = str(info.value)
    if words is None:
        assert "likely mistake" not in message, message
    else:
        assert words in message, message


@pytest.mark.parametrize("check, fn, mistake, words", WRONG, ids=WRONG_IDS)
def test_the_grader_s_verdict_raises_the_same_id(check, fn, mistake, words):
    """The worker's record (request → probe), judged as the grader judges it."""
    options = {"part": "all", "suite": "visible"}
    record = check.probe(fn, check.request(options, None))
    with pytest.raises(CheckFailure) as info:
        check.verdict(record, options, None, symbol=check.function)
    assert info.value.mistake == mistake
    message = str(info.value)
    assert "reproduce:" not in message
    if words is None:
        assert "likely mistake" not in message, message
    else:
        assert words in message, message


def test_the_id_follows_the_mistake_the_message_names_not_the_shown_failure_s():
    """When the shown failure has no mistake of its own, the id is still the one the message names."""
    report = _core.run(ch01.CONV2D_EXERCISE, conv2d_with_bug("kernel_transposed"), ch01.conv2d_cases("all"),
                       devices=("cpu",), fn_name="conv2d")
    first, named, count = report._clearest()
    assert named is not None and count >= 2 and first.mistake != named.mistake
    assert report.named_mistake() == named.mistake_id == "kernel-transposed"
    assert f"match): {named.mistake}." in report.message("conv2d")
