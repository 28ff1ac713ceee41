"""`make grade` on Chapter 8: the training part is graded on held-out images whose seed the sandbox never sees."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import nbformat
import pytest

from autograder import notebooks as nbs
from conftest import REPO, release_path, solution_path

AID = "ch08_encoder_decoder"
ANSWERS = {gid: src for _, gid, src in nbs.solution_cells(nbs.read(solution_path(AID)))}
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
    tmp = tmp_path_factory.mktemp("class08")
    subs = tmp / "submissions"
    release = nbs.read(release_path(AID))
    for student, sources in CLASS.items():
        nb = nbformat.from_dict(json.loads(json.dumps(release)))
        for cell in nb.cells:
            gid = nbs.nbgrader_meta(cell).get("grade_id")
            if gid in sources:
                cell.source = sources[gid]
        (subs / student).mkdir(parents=True)
        nbformat.write(nb, str(subs / student / f"{AID}.ipynb"), version=4)
    out = tmp / "out"
    proc = subprocess.run([sys.executable, "-m", "autograder.grade", AID, str(subs), str(out), "--jobs", "2"],
                          capture_output=True, text=True, timeout=1500, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(out / "grades.csv") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    return out, rows


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
    assert torch.equal(images, ch08.heldout_images(seed))


def test_the_training_part_is_a_csv_column_with_its_points(graded):
    _, rows = graded
    assert float(rows["ada_correct"]["test_segnet_training"]) == 6
    assert float(rows["ben_no_crop"]["test_segnet_wiring"]) == 0
