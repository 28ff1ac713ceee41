"""Chapter 8 checks: the solution's SegNet passes, wrong wirings are named, the threshold is reliable across seeds."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder import CheckFailure, NotAttempted, RuleViolation, ch08
from conftest import load_solution

AID = "ch08_encoder_decoder"


@pytest.fixture(scope="module")
def sol():
    return load_solution(AID)


def variant(sol, upsample=None, head_classes=None, unused_layer=False, learner_layers=True):
    """A SegNet written apart from the solution, with one thing changed: how it upsamples and lands on the skip."""
    ConvT, conv_bn_relu = sol["ConvTranspose2d"], sol["conv_bn_relu"]

    class Net(nn.Module):
        def __init__(self, in_channels=3, num_classes=4, width=16):
            super().__init__()
            w = width
            self.e0, self.e1, self.e2 = conv_bn_relu(in_channels, w), conv_bn_relu(w, 2 * w, 2), conv_bn_relu(2 * w, 4 * w, 2)
            make = (lambda a, b: ConvT(a, b, 4, stride=2, padding=1)) if learner_layers else \
                (lambda a, b: nn.Conv2d(a, b, 3, padding=1))
            self.u2, self.u1 = make(4 * w, 2 * w), make(2 * w, w)
            self.f2, self.f1 = conv_bn_relu(4 * w, 2 * w), conv_bn_relu(2 * w, w)
            self.head = nn.Conv2d(w, head_classes or num_classes, 1)
            if unused_layer:
                self.extra = nn.Conv2d(w, w, 3, padding=1)

        def up(self, layer, x, skip):
            H, W = skip.shape[-2:]
            if upsample == "no_crop":
                return layer(x)
            if upsample == "torch_convT":
                t = nn.ConvTranspose2d(x.shape[1], layer.weight.shape[1], 4, 2, 1)
                return t(x)[..., :H, :W]
            if upsample == "interpolate":  # the learner's layer, then torch's resize to land on the skip
                return F.interpolate(layer(x), size=(H, W), mode="bilinear")
            if not learner_layers:  # its own nearest resize: repeat, then convolve
                return layer(x.repeat_interleave(2, -2).repeat_interleave(2, -1)[..., :H, :W])
            return layer(x)[..., :H, :W]

        def forward(self, x):
            s0 = self.e0(x)
            s1 = self.e1(s0)
            s2 = self.e2(s1)
            u = self.f2(torch.cat([self.up(self.u2, s2, s1), s1], 1))
            u = self.f1(torch.cat([self.up(self.u1, u, s0), s0], 1))
            return self.head(u)

    return Net


def test_the_solution_segnet_passes_the_wiring_check_visible_and_hidden(sol):
    assert ch08.check_segnet(sol["SegNet"], part="wiring", quiet=True) is None
    assert ch08.check_segnet(sol["SegNet"], part="wiring", suite="hidden", quiet=True) is None


def test_an_independent_correct_variant_passes_the_wiring_check(sol):
    assert ch08.check_segnet(variant(sol), part="wiring", quiet=True) is None


def test_an_upsampler_that_overshoots_odd_sizes_is_told_to_land_on_the_skip(sol):
    with pytest.raises(CheckFailure, match="skip") as err:
        ch08.check_segnet(variant(sol, upsample="no_crop"), part="wiring", quiet=True)
    assert "33" in str(err.value) or "31" in str(err.value)


@pytest.mark.parametrize("how", ["torch_convT", "interpolate"])
def test_torch_upsamplers_in_the_forward_break_the_rule(sol, how):
    with pytest.raises(RuleViolation, match="your own layers"):
        ch08.check_segnet(variant(sol, upsample=how), part="wiring", quiet=True)


def test_a_model_without_the_learners_transposed_convolution_is_refused(sol):
    with pytest.raises(CheckFailure, match="none of your ConvTranspose2d"):
        ch08.check_segnet(variant(sol, learner_layers=False), part="wiring", quiet=True)


def test_a_head_with_the_wrong_number_of_classes_is_named(sol):
    with pytest.raises(CheckFailure, match="num_classes"):
        ch08.check_segnet(variant(sol, head_classes=3), part="wiring", quiet=True)


def test_a_layer_that_is_never_used_gets_no_gradient_and_is_named(sol):
    with pytest.raises(CheckFailure, match="extra.weight"):
        ch08.check_segnet(variant(sol, unused_layer=True), part="wiring", quiet=True)


def test_a_constructor_that_ignores_its_arguments_fails(sol):
    Fixed = variant(sol)

    class IgnoresArgs(Fixed):
        def __init__(self, in_channels=3, num_classes=4, width=16):
            super().__init__()

    with pytest.raises(CheckFailure, match=r"SegNet\(in_channels=1, num_classes=2, width=8\)"):
        ch08.check_segnet(IgnoresArgs, part="wiring", quiet=True)


def test_an_unwritten_segnet_is_not_attempted_and_a_wrong_signature_is_named():
    class Stub(nn.Module):
        def __init__(self, in_channels=3, num_classes=4, width=16):
            super().__init__()
            raise NotImplementedError()

    class WrongSignature(nn.Module):
        def __init__(self, channels=3, classes=4):
            super().__init__()

    with pytest.raises(NotAttempted):
        ch08.check_segnet(Stub, quiet=True)
    with pytest.raises(CheckFailure, match="signature"):
        ch08.check_segnet(WrongSignature, quiet=True)
    with pytest.raises(CheckFailure, match="subclasses torch.nn.Module"):
        ch08.check_segnet(lambda: None, quiet=True)


# --------------------------------------------------------------------------
# The training verdict, on records made by hand (no training needed)


def _record(pred, layers=("up",)):
    return {"build_error": None, "train_error": None, "violations": [], "pred": pred, "seconds": 1.0,
            "learner_layers": list(layers)}


def test_the_training_verdict_passes_perfect_predictions_and_names_background_only_ones():
    _, labels = ch08.heldout(3)
    assert ch08.verdict_training(_record(labels.to(torch.uint8)), labels)["iou"] == 1.0
    with pytest.raises(CheckFailure, match="background almost everywhere") as err:
        ch08.verdict_training(_record(torch.zeros_like(labels, dtype=torch.uint8)), labels)
    assert f"{ch08.IOU_THRESHOLD:.2f}" in str(err.value) and "Per class" in str(err.value)


def test_the_training_verdict_refuses_wrong_shapes_rule_breaks_and_missing_layers():
    _, labels = ch08.heldout(3)
    with pytest.raises(CheckFailure, match="shape"):
        ch08.verdict_training(_record(labels[:, :-1].to(torch.uint8)), labels)
    with pytest.raises(RuleViolation):
        ch08.verdict_training({**_record(None), "violations": [["upsample_bilinear2d", "no"]]}, labels)
    with pytest.raises(CheckFailure, match="none of your ConvTranspose2d"):
        ch08.verdict_training(_record(labels.to(torch.uint8), layers=()), labels)


def test_the_mean_iou_matches_a_count_by_hand():
    truth = torch.tensor([[0, 0, 1, 1], [2, 2, 3, 3]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 2, 3, 0]])
    # background 1/3, disc 2/3, square 2/2, triangle 1/2
    assert ch08.class_ious(pred, truth) == pytest.approx([1 / 3, 2 / 3, 1.0, 0.5])
    assert ch08.mean_iou(pred, truth) == pytest.approx((1 / 3 + 2 / 3 + 1 + 0.5) / 4)


def test_the_shapes_task_is_deterministic_and_sized_as_asked():
    x1, y1 = ch08.make_shapes(5, (17, 24), seed=4)
    x2, y2 = ch08.make_shapes(5, (17, 24), seed=4)
    assert x1.shape == (5, 3, 17, 24) and y1.shape == (5, 17, 24)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert set(y1.unique().tolist()) <= {0, 1, 2, 3} and 0 <= x1.min() <= x1.max() <= 1


# --------------------------------------------------------------------------
# The threshold: reached by the solution on every seed tried, missed by a model that cannot see shapes


def _train_and_score(kind, seed):
    """In a fresh process (one thread): train with the recipe, return the held-out mean IoU."""
    torch.set_num_threads(1)
    from conftest import load_solution as load

    ns = load(AID)
    cls = ns["SegNet"]
    if kind == "pixelwise":  # a 3x3 receptive field: colour and local edges, never a whole shape
        ConvT = ns["ConvTranspose2d"]

        class Pixelwise(nn.Module):
            def __init__(self, in_channels=3, num_classes=4, width=16):
                super().__init__()
                self.body = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
                self.up = ConvT(width, num_classes, 1)

            def forward(self, x):
                return self.up(self.body(x))

        cls = Pixelwise
    images, labels = ch08.heldout(90_000 + seed)
    data = ch08.probe_training(cls, seed, images)
    return ch08.mean_iou(data["pred"].long(), labels), data["seconds"]


def test_the_solution_reaches_the_threshold_on_every_seed_and_a_pixelwise_model_does_not():
    """Is the training threshold reliable: the honest solution passes on 3 seeds, a model that cannot see shapes fails?"""
    jobs = [("solution", 11), ("solution", 12), ("solution", 13), ("pixelwise", 11)]
    with cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        scores = dict(zip(jobs, pool.map(_train_and_score, *zip(*jobs))))
    for (kind, seed), (iou, seconds) in scores.items():
        print(f"{kind} seed {seed}: mean IoU {iou:.3f} in {seconds:.0f} s")
    honest = [iou for (kind, _), (iou, _) in scores.items() if kind == "solution"]
    assert min(honest) >= ch08.IOU_THRESHOLD + 0.05, f"the threshold leaves too little margin: {honest}"
    assert scores[("pixelwise", 11)][0] < ch08.IOU_THRESHOLD
