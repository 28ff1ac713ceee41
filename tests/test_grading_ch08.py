"""`make grade` on Chapter 8: the training part is graded on held-out images whose seed the sandbox never sees."""

from __future__ import annotations


import pytest

from conftest import answers, grade_class

AID = "ch08_encoder_decoder"
ANSWERS = answers(AID)
CROP = "x = up(x)[..., :H, :W]"
assert CROP in ANSWERS["SegNet"]

CLASS = {
    "ada_correct": ANSWERS,
    # honest but unfinished: no crop, so odd sizes break (training at 32x32 still works)
    "ben_no_crop": {**ANSWERS, "SegNet": ANSWERS["SegNet"].replace(CROP, "x = up(x)")},
    # torch's transposed convolution in the decoder: the rule
    "cy_torch_layer": {**ANSWERS, "SegNet": ANSWERS["SegNet"].replace("ConvTranspose2d(", "nn.ConvTranspose2d(")},
    "dee_empty": {},
}
EXPECTED = {"ada_correct": (10, None), "ben_no_crop": (6, "skip"), "cy_torch_layer": (0, "forbids"),
            "dee_empty": (0, "NotImplementedError")}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    return grade_class(AID, CLASS, tmp_path_factory.mktemp("class08"), "--jobs", "2")


@pytest.mark.parametrize("student", list(EXPECTED))
def test_every_chapter8_submission_gets_its_expected_grade_and_reason(graded, student):
    out, rows = graded
    score, words = EXPECTED[student]
    assert float(rows[student]["score"]) == score, rows[student]
    if words:
        assert words in (out / "feedback" / student / f"{AID}.html").read_text()


def test_the_worker_gets_held_out_images_but_never_their_seed_or_labels(graded):
    """What crosses to the worker for the training part: the images of a seed the grader draws and keeps;
    neither the seed nor the labels. And nothing of it is left where the sandbox could write."""
    import torch

    from autograder import ch08
    from autograder.grading.protocol import encode
    from autograder.grading.spec import graded_checks

    check = graded_checks()["check_segnet"]
    options = {"part": "training", "suite": "hidden", "seed": 3}
    secret = check.secret(options)
    assert secret is not None and secret != check.secret(options)  # fresh for every grading run
    request = check.request(options, secret)
    images, labels = ch08.heldout(secret)
    assert torch.equal(request["images"], images)
    frame = encode(request)
    assert str(secret).encode() not in frame
    tensors = [v for v in request.values() if isinstance(v, torch.Tensor)]
    assert not any(t.shape == labels.shape for t in tensors)
    out, _ = graded
    # the grader keeps no secret and no result in a student's scratch folder: it reads nothing from there
    scratch = out / "work" / "ada_correct"
    assert not any(p.suffix == ".pt" or p.name in ("done.json", "job.json", "log.json") for p in scratch.rglob("*"))


def test_the_training_part_is_a_csv_column_with_its_points(graded):
    _, rows = graded
    assert float(rows["ada_correct"]["test_segnet_training"]) == 6
    assert float(rows["ben_no_crop"]["test_segnet_wiring"]) == 0
