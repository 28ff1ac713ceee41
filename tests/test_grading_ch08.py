"""`make grade` on Chapter 8: the training part is graded on held-out images whose seed the sandbox never sees."""

from __future__ import annotations

import json

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


def test_the_sandbox_gets_held_out_images_but_never_their_seed(graded):
    """Could a submission read, from what it is given, the labels it is graded against?"""
    import torch

    out, _ = graded
    work = out / "work" / "ada_correct"
    secrets = json.loads((work / "done.json").read_text())["secrets"]
    assert len(secrets) == 1
    seed = next(iter(secrets.values()))
    job = (work / "job.json").read_text()
    assert str(seed) not in job and "secret" not in job
    data = next(work.glob("data*.pt"))
    images = torch.load(data, weights_only=True)
    assert type(images) is torch.Tensor and images.dim() == 4  # images only: no labels travel with them
    from autograder import ch08
    assert torch.equal(images, ch08.heldout(seed)[0])


def test_the_training_part_is_a_csv_column_with_its_points(graded):
    _, rows = graded
    assert float(rows["ada_correct"]["test_segnet_training"]) == 6
    assert float(rows["ben_no_crop"]["test_segnet_wiring"]) == 0
