"""Chapter 8 — an encoder-decoder trained end to end.

    make_shapes(n, size=32, seed=0)          the synthetic segmentation task (images, labels)
    mean_iou(pred, truth)                    the metric
    train_segmenter(model, images, labels)   the training recipe the book and the checks share
    check_segnet(cls, part="wiring" | "training" | "all", suite="visible")

``wiring``: ``SegNet(in_channels, num_classes, width)`` returns one logit per class and pixel at the
input's size, for odd and even, square and non-square inputs; it upsamples with the learner's own
layers (no torch transposed convolution, interpolation or pixel-shuffle operator, and at least one
learner ``ConvTranspose2d``); every parameter gets a gradient.

``training``: a fresh ``SegNet()`` trained with :func:`train_segmenter` on the CPU reaches a mean IoU
of at least :data:`IOU_THRESHOLD` on held-out images. Like every module check, it is split into a
*probe* that runs learner code and records plain data, and a *verdict* that judges the record; the
grader runs the probe in its sandbox and the verdict in its own process, on held-out images whose
seed the sandbox never sees.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from ._core import CPU_ONLY_NOTICE, CheckFailure, policy_check, stub_error, NotAttempted, RuleViolation, available_devices
from ._rules import Rule, error_record, run_guarded, warm_up
from .contract import GradedCheck, module_check_prologue

warm_up()

CLASS_NAMES = ("background", "disc", "square", "triangle")

# --------------------------------------------------------------------------
# The task


def make_shapes(n, size=32, seed=0, shapes_per_image=3):
    """``n`` images ``(n, 3, H, W)`` in [0, 1] and their labels ``(n, H, W)``: 0 background, 1 disc, 2 square,
    3 triangle. ``size`` is an int or ``(H, W)``. The same seed gives the same data on every machine."""
    H, W = (size, size) if isinstance(size, int) else tuple(size)
    g = torch.Generator().manual_seed(seed)

    def u(*shape):
        return torch.rand(*shape, generator=g)

    yy, xx = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")
    # background: a smooth colour field, faint stripes at a random angle, and (at the end) pixel noise
    image = 0.3 + 0.4 * F.interpolate(u(n, 3, 4, 4), size=(H, W), mode="bicubic").clamp(0, 1)
    freq, phase, angle = 0.3 + 0.9 * u(n, 1, 1, 1), 6.3 * u(n, 1, 1, 1), 3.14 * u(n, 1, 1, 1)
    image = image + 0.08 * torch.sin(freq * (xx * torch.cos(angle) + yy * torch.sin(angle)) + phase)
    label = torch.zeros(n, H, W, dtype=torch.long)
    side = min(H, W)
    for _ in range(shapes_per_image):
        cls = torch.randint(1, 4, (n, 1, 1), generator=g)
        r = (0.12 + 0.12 * u(n, 1, 1)) * side                       # radius: 4 to 8 pixels at size 32
        dy = yy - (r + (H - 2 * r) * u(n, 1, 1))                     # offsets from a centre that keeps
        dx = xx - (r + (W - 2 * r) * u(n, 1, 1))                     # the shape inside the image
        disc = dy ** 2 + dx ** 2 < r ** 2
        square = (dy.abs() < 0.8 * r) & (dx.abs() < 0.8 * r)
        triangle = (dy > -r) & (dy < 0.6 * r) & (dx.abs() < 0.62 * (dy + r))
        inside = torch.where(cls == 1, disc, torch.where(cls == 2, square, triangle))
        colour = u(n, 3, 1, 1) + 0.05 * torch.randn(n, 3, H, W, generator=g)   # colour says nothing of the class
        image = torch.where(inside[:, None], colour, image)
        label = torch.where(inside, cls, label)                      # later shapes cover earlier ones
    image = image + 0.06 * torch.randn(image.shape, generator=g)
    return image.clamp(0, 1), label


def class_ious(pred, truth, num_classes=4):
    """Per class: |pred ∩ truth| / |pred ∪ truth| over all pixels of all images (NaN for a class absent from both)."""
    out = []
    for c in range(num_classes):
        union = int(((pred == c) | (truth == c)).sum())
        out.append(int(((pred == c) & (truth == c)).sum()) / union if union else float("nan"))
    return out


def mean_iou(pred, truth, num_classes=4):
    """Mean over the classes present in ``pred`` or ``truth`` of their intersection over union."""
    ious = [v for v in class_ious(pred, truth, num_classes) if v == v]
    return sum(ious) / len(ious)


def train_segmenter(model, images, labels, steps=200, batch_size=32, lr=3e-3, seed=0, progress=None):
    """Adam on per-pixel cross-entropy, one-cycle learning rate; the mini-batches depend only on ``seed``. Returns the model in eval mode.

    ``progress``: a tqdm description to show a progress bar, or None for none.
    """
    g = torch.Generator().manual_seed(seed)              # the same batches, whatever the model
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)  # warm up, then anneal
    model.train()
    steps_iter = range(steps)
    if progress:
        from tqdm.auto import tqdm
        steps_iter = tqdm(steps_iter, desc=progress, mininterval=1, leave=False)
    for _ in steps_iter:
        idx = torch.randint(0, len(images), (batch_size,), generator=g)
        loss = F.cross_entropy(model(images[idx]), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    return model.eval()


# --------------------------------------------------------------------------
# The graded recipe: stated once, quoted in the notebook and the messages.

#: What the training check does (CPU, one thread: about 20-35 s with a loop-over-taps ConvTranspose2d).
RECIPE = dict(size=32, n_train=2000, n_heldout=300, steps=500, batch_size=16, lr=1e-2)
#: The mean IoU a fresh ``SegNet()`` must reach on held-out images after the recipe. The reference
#: solution reaches about 0.78-0.82 across seeds (tests/test_ch08_checks.py trains it on several).
IOU_THRESHOLD = 0.65
#: ``SegNet()`` may hold at most this many parameters (keeps the training run about a minute at most).
MAX_PARAMETERS = 300_000
SIGNATURE = "self, in_channels=3, num_classes=4, width=16"

#: (in_channels, num_classes, width) and the (H, W) input sizes of the wiring check.
WIRING_CONFIGS = ((3, 4, 16), (1, 2, 8))
WIRING_SIZES = ((32, 32), (33, 33), (31, 32), (17, 24), (16, 16), (21, 19))
HIDDEN_WIRING_SIZES = WIRING_SIZES + ((35, 29), (24, 37), (8, 8), (13, 13), (40, 30))


def wiring_sizes(suite: str, seed=None) -> tuple:
    """The suite's input sizes; the hidden one adds three drawn from its seed (a course offering's, when grading)."""
    if suite != "hidden":
        return WIRING_SIZES
    import random

    rng = random.Random(f"wiring-{seed or 0}")
    return HIDDEN_WIRING_SIZES + tuple((rng.randint(8, 40), rng.randint(8, 40)) for _ in range(3))

UPSAMPLER_RULE = Rule(r"upsample|interpolate|pixel_shuffle|pixel_unshuffle|grid_sampler|conv_transpose|"
                      r"convolution\[transposed\]|col2im|max_unpool",
                      "the decoder upsamples with your own layers (your ConvTranspose2d, or your own nearest or "
                      "pixel-shuffle code): no torch transposed convolution, interpolation or pixel-shuffle operator")


def _guarded(call):
    """Run learner code under the rule. Returns (result, error dict or None, violations)."""
    return run_guarded(call, (UPSAMPLER_RULE,))


def _learner_layers(model) -> list[str]:
    """Names of the learner's own ConvTranspose2d modules inside ``model`` (torch's do not count)."""
    return [name for name, m in model.named_modules()
            if type(m).__name__ == "ConvTranspose2d" and not type(m).__module__.startswith("torch")]


def _describe(cfg) -> str:
    return "SegNet(in_channels={}, num_classes={}, width={})".format(*cfg)


# --------------------------------------------------------------------------
# Probe (runs learner code, worker side) and verdict (judges the record, grader side)


def probe_wiring(cls, sizes=WIRING_SIZES, device="cpu") -> dict:
    """Build SegNet for each wiring config and run it on ``sizes``; record shapes, errors, rule violations
    and which parameters get no gradient."""
    data = {"configs": []}
    for cfg in WIRING_CONFIGS:
        rec = {"cfg": list(cfg), "outputs": []}
        torch.manual_seed(0)
        model, rec["build_error"], _ = _guarded(lambda: cls(*cfg))
        data["configs"].append(rec)
        if model is None:
            continue
        if not isinstance(model, nn.Module):
            rec["build_error"] = {"type": "TypeError", "message": f"SegNet(...) built a {type(model).__name__}, "
                                                                  "not a torch.nn.Module"}
            continue
        rec["params"] = int(sum(p.numel() for p in model.parameters()))
        rec["learner_layers"] = _learner_layers(model)
        try:
            model = model.to(device).eval()
        except Exception as e:  # noqa: BLE001
            rec["build_error"] = error_record(e)
            continue
        g = torch.Generator().manual_seed(7)
        for H, W in sizes:
            x = torch.rand(2, cfg[0], H, W, generator=g).to(device)
            with torch.no_grad():
                y, err, viol = _guarded(lambda: model(x))
            shape = list(y.shape) if type(y) is torch.Tensor else None
            rec["outputs"].append({"size": [H, W], "shape": shape, "error": err, "violations": viol,
                                   "dtype": str(y.dtype) if type(y) is torch.Tensor else type(y).__name__,
                                   "device": str(y.device.type) if type(y) is torch.Tensor else None,
                                   "finite": bool(torch.isfinite(y).all()) if type(y) is torch.Tensor else False})
        if cfg == WIRING_CONFIGS[0]:
            model.train()
            x = torch.rand(2, cfg[0], 32, 32, generator=g).to(device)

            def backward():
                model.zero_grad(set_to_none=True)
                model(x).logsumexp(1).mean().backward()
                return [n for n, p in model.named_parameters()
                        if p.requires_grad and (p.grad is None or not bool(torch.isfinite(p.grad).all()))]

            no_grad, rec["backward_error"], rec["backward_violations"] = _guarded(backward)
            rec["no_grad"] = no_grad
    return data


def verdict_wiring(data, sizes=WIRING_SIZES, where="cpu") -> None:
    """Judge a wiring record: it builds, has a learner ConvTranspose2d, gives the right output per size,
    and every parameter learns; raise or return."""
    for rec in data["configs"]:
        cfg = tuple(rec["cfg"])
        err = rec.get("build_error")
        if err and err["type"] == "NotImplementedError":
            raise NotAttempted("SegNet is not implemented yet (it raises NotImplementedError).")
        if err:
            raise CheckFailure(f"{_describe(cfg)} raised {err['type']}: {err['message']}")
        if cfg == WIRING_CONFIGS[0] and rec["params"] > MAX_PARAMETERS:
            raise CheckFailure(f"{_describe(cfg)} has {rec['params']:,} parameters; keep it under {MAX_PARAMETERS:,} "
                               "so that it trains on a CPU in about a minute.")
        if not rec.get("learner_layers"):
            raise CheckFailure(f"{_describe(cfg)} contains none of your ConvTranspose2d layers: the decoder must "
                               "upsample with your own ConvTranspose2d (pasted from Chapter 6) in at least one stage.")
        for out in rec["outputs"]:
            H, W = out["size"]
            case = f"{_describe(cfg)} on an input of shape (2, {cfg[0]}, {H}, {W}) ({where})"
            if out["violations"]:
                op, reason = out["violations"][0]
                raise RuleViolation(f"{case}: forward called `{op}`, which this exercise forbids: {reason}")
            if out["error"]:
                e = out["error"]
                if e["type"] == "NotImplementedError":
                    failure = stub_error("forward", e.get("stub") or (), "SegNet.forward")
                    if isinstance(failure, NotAttempted):
                        raise NotAttempted(f"{case}: forward raised NotImplementedError — paste your Chapter 6 "
                                           "conv_transpose2d and ConvTranspose2d, and write forward.")
                    raise failure
                hint = ""
                if "size" in e["message"].lower() or "match" in e["message"].lower():
                    hint = (" — an upsampled map and its skip connection disagree in size: for an odd size, a "
                            "stride-2 upsampler overshoots by one pixel (crop it to the skip's size, or choose "
                            "output_padding from the skip's size)")
                raise CheckFailure(f"{case}: forward raised {e['type']}: {e['message']}{hint}")
            want = [2, cfg[1], H, W]
            if out["shape"] is None:
                raise CheckFailure(f"{case}: forward returned a {out['dtype']}; expected a torch.Tensor of shape "
                                   f"{tuple(want)}.")
            if out["shape"] != want:
                got = out["shape"]
                hint = ""
                if len(got) == 4 and got[1] != cfg[1]:
                    hint = f" — the channels should be num_classes = {cfg[1]} (one logit per class)"
                elif len(got) == 4 and (abs(got[2] - H) <= 2 or abs(got[3] - W) <= 2):
                    odd = [n for n, v in (("height", H), ("width", W)) if v % 2]
                    hint = (" — off by a pixel or two: a stride-2 upsampler returns an even size, or one more than "
                            "it should" + (f"; this input's {' and '.join(odd)} is odd" if odd else "") +
                            ". Upsample to the skip connection's size: crop or pad, or pick output_padding "
                            "from it")
                raise CheckFailure(f"{case}: the output has shape {tuple(got)}; expected {tuple(want)}{hint}.")
            if out["dtype"] != "torch.float32" or out["device"] != where:
                raise CheckFailure(f"{case}: the output is {out['dtype']} on {out['device']}; expected torch.float32 "
                                   f"on {where}, like the input.")
            if not out["finite"]:
                raise CheckFailure(f"{case}: the output holds NaN or infinite values.")
        if "no_grad" in rec:
            if rec.get("backward_violations"):
                op, reason = rec["backward_violations"][0]
                raise RuleViolation(f"{_describe(cfg)}: training called `{op}`, which this exercise forbids: {reason}")
            if rec.get("backward_error"):
                e = rec["backward_error"]
                raise CheckFailure(f"{_describe(cfg)}: backward through the model raised {e['type']}: {e['message']}")
            if rec["no_grad"]:
                names = ", ".join(rec["no_grad"][:4])
                raise CheckFailure(f"{_describe(cfg)}: these parameters get no (finite) gradient: {names} — a layer "
                                   "built in __init__ but not used in forward, or a detach in the way.")


def heldout(seed):
    """The held-out images and labels of a seed: the images go to the probe, the labels to the verdict."""
    return make_shapes(RECIPE["n_heldout"], RECIPE["size"], seed=seed)


def _train_seed(seed) -> int:
    return 80_000 + int(seed or 0)


def probe_training(cls, seed=None, images=None, progress=None) -> dict:
    """Train a fresh ``cls()`` with the recipe; record its predicted labels for ``images`` (held out)."""
    data = {"build_error": None, "train_error": None, "violations": [], "pred": None, "seconds": None}
    torch.manual_seed(_train_seed(seed))
    model, data["build_error"], _ = _guarded(lambda: cls())
    if model is None:
        return data
    if not isinstance(model, nn.Module):
        data["build_error"] = {"type": "TypeError", "message": f"SegNet() built a {type(model).__name__}"}
        return data
    data["learner_layers"] = _learner_layers(model)
    train_x, train_y = make_shapes(RECIPE["n_train"], RECIPE["size"], seed=_train_seed(seed))
    # One guarded forward first: a model that breaks the rule or cannot run is not worth a training run.
    _, data["train_error"], data["violations"] = _guarded(lambda: model(train_x[:2]))
    if data["train_error"] or data["violations"] or not data["learner_layers"]:
        return data
    start = time.perf_counter()
    try:  # the loop is the library's; the model is the learner's (its predictions are guarded below)
        train_segmenter(model, train_x, train_y, RECIPE["steps"], RECIPE["batch_size"], RECIPE["lr"],
                        seed=_train_seed(seed), progress=progress)
    except Exception as e:  # noqa: BLE001 - NotImplementedError included: the verdict tells it apart
        data["train_error"] = error_record(e)
        return data
    data["seconds"] = time.perf_counter() - start
    with torch.no_grad():
        logits, err, viol = _guarded(lambda: torch.cat([model(images[i:i + 100]) for i in range(0, len(images), 100)]))
    data["violations"] = viol
    if err:
        data["train_error"] = err
    elif type(logits) is torch.Tensor and logits.dim() == 4:
        data["pred"] = logits.argmax(1).to(torch.uint8).cpu().clone()
    else:
        data["train_error"] = {"type": "TypeError", "message": "the model did not return (N, classes, H, W) logits"}
    return data


def verdict_training(data, labels) -> dict:
    """Judge a training record against the held-out labels; return {"iou": ..., "ious": [...]} or raise."""
    err = data.get("build_error") or data.get("train_error")
    if err and err["type"] == "NotImplementedError":
        raise NotAttempted("SegNet is not implemented yet (it raises NotImplementedError).")
    if err:
        raise CheckFailure(f"training SegNet() failed: {err['type']}: {err['message']}")
    if data.get("violations"):
        op, reason = data["violations"][0]
        raise RuleViolation(f"the trained SegNet called `{op}`, which this exercise forbids: {reason}")
    if not data.get("learner_layers"):
        raise CheckFailure("SegNet() contains none of your ConvTranspose2d layers: the decoder must upsample with "
                           "your own ConvTranspose2d (pasted from Chapter 6) in at least one stage.")
    pred = data.get("pred")
    if type(pred) is not torch.Tensor or tuple(pred.shape) != tuple(labels.shape):
        got = tuple(pred.shape) if type(pred) is torch.Tensor else None
        raise CheckFailure(f"the trained model's predictions have shape {got}; expected {tuple(labels.shape)} "
                           "(one class per pixel of each held-out image).")
    ious = class_ious(pred.long(), labels)
    iou = mean_iou(pred.long(), labels)
    per_class = ", ".join(f"{n} {v:.2f}" for n, v in zip(CLASS_NAMES, ious))
    seconds = f" in {data['seconds']:.0f} s" if data.get("seconds") else ""
    if iou < IOU_THRESHOLD:
        hint = ""
        if (pred == 0).float().mean() > 0.97:
            hint = (" The model predicts background almost everywhere: is the decoder wired to the encoder (skip "
                    "connections), and does the loss reach every layer?")
        elif min(v for v in ious if v == v) < 0.2:
            hint = " One class is almost never found: does the last layer give num_classes logits per pixel?"
        else:
            hint = (" The segmentation is only rough: check that skip connections bring back full-resolution "
                    "detail, that upsampled maps are aligned with their skips (crop the bottom/right excess, "
                    "not the top/left), and that each stage normalises (BatchNorm) and uses a non-linearity.")
        raise CheckFailure(f"after training SegNet() with the recipe ({RECIPE['steps']} Adam steps of "
                           f"{RECIPE['batch_size']} images{seconds}), the mean IoU on {len(labels)} held-out images "
                           f"is {iou:.3f}; at least {IOU_THRESHOLD:.2f} is needed. Per class: {per_class}.{hint}")
    return {"iou": iou, "ious": ious}


# --------------------------------------------------------------------------
# The check learners call

PARTS = ("wiring", "training")


def check_segnet(cls, part="all", suite="visible", seed=None, quiet=False):
    """Check a learner's ``SegNet`` class: its wiring (sizes, rules, gradients) and a short training run."""
    __tracebackhide__ = True  # noqa: F841
    parts = module_check_prologue(cls, "SegNet", SIGNATURE, part, PARTS)
    devices = tuple(available_devices())
    policy_check(cls, "SegNet")
    if "wiring" in parts:
        sizes = wiring_sizes(suite, seed)
        for device in devices:
            verdict_wiring(probe_wiring(cls, sizes, device), sizes, device)
        if not quiet:
            print(f"✔ SegNet wiring: the output has the input's size for {len(sizes)} input sizes (odd and even), "
                  f"your ConvTranspose2d upsamples, every parameter learns; on {', '.join(devices)}.")
            if "cuda" not in devices:
                print("  " + CPU_ONLY_NOTICE)
    if "training" in parts:
        images, labels = heldout(90_000 + (seed or 0) + (1 if suite == "hidden" else 0))
        data = probe_training(cls, seed, images, progress=None if quiet else "training SegNet")
        result = verdict_training(data, labels)
        if not quiet:
            print(f"✔ SegNet training: mean IoU {result['iou']:.3f} on {RECIPE['n_heldout']} held-out images "
                  f"(at least {IOU_THRESHOLD:.2f} needed) after {RECIPE['steps']} steps in {data['seconds']:.0f} s "
                  "(trained on the CPU).")


# --------------------------------------------------------------------------
# Grading: the worker gets held-out images, never their seed or labels.


def _parts(options) -> tuple[str, ...]:
    part = options.get("part", "all")
    return PARTS if part == "all" else (part,)


class SegNetCheck(GradedCheck):
    """Grading of ``SegNet``: wiring on the suite's sizes, and training judged on held-out images drawn from a
    fresh secret per grading run (the grader keeps the seed and the labels; the worker gets the images)."""

    check = "check_segnet"
    bench_class = 2  # each submission trains a network: two make the benchmark's class

    def secret(self, options):
        """Grader side: a fresh seed for the held-out images when training is graded, else None."""
        import secrets

        return secrets.randbelow(2 ** 31) if "training" in _parts(options) else None

    def request(self, options, secret):
        """Grader side: the parts, the input sizes, the seed and (for training) the held-out images."""
        sizes = wiring_sizes(options.get("suite", "hidden"), options.get("seed"))
        req = {"parts": list(_parts(options)), "sizes": [list(s) for s in sizes], "seed": options.get("seed")}
        if secret is not None:
            req["images"] = heldout(secret)[0]
        return req

    def probe(self, cls, request):
        """Worker side: run the wiring and training probes the request asks for on the learner's class."""
        record = {}
        if "wiring" in request["parts"]:
            record["wiring"] = probe_wiring(cls, [tuple(s) for s in request["sizes"]])
        if "training" in request["parts"]:
            record["training"] = probe_training(cls, request.get("seed"), request["images"])
        return record

    def verdict(self, record, options, secret):
        """Grader side: judge the wiring and training records; the held-out labels come from the secret."""
        sizes = wiring_sizes(options.get("suite", "hidden"), options.get("seed"))
        if "wiring" in _parts(options):
            verdict_wiring(record["wiring"], sizes)
        if "training" in _parts(options):
            if secret is None:
                raise CheckFailure("the held-out seed of this grading run is missing.")
            verdict_training(record["training"], heldout(secret)[1])


GRADED_SEGNET = SegNetCheck()
