"""Chapter 9: the book's routes equal torch's; the speed check passes fast and right, fails slow or wrong."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from autograder import CheckFailure, NotAttempted, RuleViolation, ch06, ch09
from conftest import load_solution


@pytest.fixture(scope="module")
def fast():
    return load_solution("ch09_making_it_fast")["conv_transpose2d"]


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 2), C_in=st.integers(1, 3), C_out=st.integers(1, 3), H=st.integers(1, 5),
       W=st.integers(1, 5), k=st.integers(1, 5), s=st.integers(1, 3), p=st.integers(0, 2), op=st.integers(0, 2),
       bias=st.booleans())
def test_every_route_of_the_chapter_equals_torch(N, C_in, C_out, H, W, k, s, p, op, bias):
    op = min(op, s - 1)
    if (H - 1) * s - 2 * p + k + op < 1 or (W - 1) * s - 2 * p + k + op < 1:
        return
    g = torch.Generator().manual_seed(N * 1000 + C_in * 100 + H * 10 + k)
    x = torch.randn(N, C_in, H, W, generator=g, dtype=torch.float64)
    w = torch.randn(C_in, C_out, k, k, generator=g, dtype=torch.float64)
    b = torch.randn(C_out, generator=g, dtype=torch.float64) if bias else None
    expected = F.conv_transpose2d(x, w, b, stride=s, padding=p, output_padding=op)
    for name, route in ch09.ROUTES.items():
        got = route(x, w, b, s, p, op)
        assert got.shape == expected.shape and torch.allclose(got, expected, atol=1e-10), name


ONEDNN = pytest.mark.skipif(not (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
                            reason="this PyTorch has no oneDNN (or it is disabled): route 7 runs its @ branch, "
                                   "which the float64 test covers")


@ONEDNN
@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 3), C_in=st.integers(1, 9), C_out=st.integers(1, 9), H=st.integers(1, 9),
       W=st.integers(1, 9), kH=st.integers(1, 5), kW=st.integers(1, 5), sH=st.integers(1, 3), sW=st.integers(1, 3),
       pH=st.integers(0, 2), pW=st.integers(0, 2), op=st.integers(0, 2), bias=st.booleans())
def test_the_onednn_route_equals_torch_in_float32_with_any_stride_padding_and_output_padding(
        N, C_in, C_out, H, W, kH, kW, sH, sW, pH, pW, op, bias):
    """Route 7's oneDNN branch (float32 on the CPU) — the float64 test above only reaches its ``@`` branch."""
    oH, oW = min(op, sH - 1), min(op, sW - 1)
    if (H - 1) * sH - 2 * pH + kH + oH < 1 or (W - 1) * sW - 2 * pW + kW + oW < 1:
        return
    g = torch.Generator().manual_seed(N * 1000 + C_in * 100 + H * 10 + kH)
    x, w = torch.randn(N, C_in, H, W, generator=g), torch.randn(C_in, C_out, kH, kW, generator=g)
    b = torch.randn(C_out, generator=g) if bias else None
    assert ch09.uses_onednn(x, w)
    expected = F.conv_transpose2d(x, w, b, stride=(sH, sW), padding=(pH, pW), output_padding=(oH, oW))
    got = ch09.route_phase_rows(x, w, b, (sH, sW), (pH, pW), (oH, oW))
    assert got.shape == expected.shape and torch.allclose(got, expected, rtol=1e-4, atol=1e-4)


@ONEDNN
def test_gradients_through_route_7s_onednn_branch_and_the_solution_are_torchs(fast):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 3, 5, 6, generator=g, requires_grad=True)
    w = torch.randn(3, 4, 4, 3, generator=g, requires_grad=True)
    b = torch.randn(4, generator=g, requires_grad=True)
    assert ch09.uses_onednn(x, w)
    expected = F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1)
    gy = torch.randn_like(expected)
    want = torch.autograd.grad(expected, (x, w, b), gy)
    for fn in (ch09.route_phase_rows, fast):
        got = torch.autograd.grad(fn(x, w, b, 2, 1, 1), (x, w, b), gy)
        assert all(torch.allclose(a, c, rtol=1e-4, atol=1e-4) for a, c in zip(got, want)), fn


@ONEDNN
def test_the_solution_multiplies_on_onednn_in_float32_and_with_at_in_float64(fast, monkeypatch):
    """The fast path's branch, seen from outside: F.linear called with a oneDNN tensor in float32 only."""
    seen, linear = [], F.linear

    def spy(a, *rest, **kw):
        seen.append(a.layout)
        return linear(a, *rest, **kw)

    monkeypatch.setattr(F, "linear", spy)
    x, w, b = ch09.reference_inputs()
    fast(x, w, b, stride=2, padding=1)
    assert seen == [torch._mkldnn]
    seen.clear()
    fast(x.double(), w.double(), b.double(), stride=2, padding=1)
    assert seen == []


def test_route_7_and_the_solution_take_a_large_batch_in_chunks_and_still_equal_torch(fast, monkeypatch):
    """A batch whose rows pass the chunk budget goes through in several chunks; the output is still torch's."""
    g = torch.Generator().manual_seed(11)
    x, w = torch.randn(2, 128, 92, 92, generator=g), torch.randn(128, 8, 4, 4, generator=g)
    b = torch.randn(8, generator=g)
    per_image = 93 * 93 * 4 * 128 * 4                       # one image's rows at stride 2, kernel 4 (T = 2)
    assert per_image > ch09.ROWS_CHUNK_BYTES                # so: one image per chunk, two chunks (16 MiB in both)
    expected = F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1)
    with torch.no_grad():
        assert torch.allclose(fast(x, w, b, 2, 1, 1), expected, rtol=1e-4, atol=1e-4)
        assert torch.allclose(ch09.route_phase_rows(x, w, b, 2, 1, 1), expected, rtol=1e-4, atol=1e-4)
        monkeypatch.setattr(ch09, "ROWS_CHUNK_BYTES", 1)      # one image per chunk at any size
        small = torch.randn(4, 3, 5, 6, generator=g), torch.randn(3, 2, 3, 3, generator=g), None
        assert torch.allclose(ch09.route_phase_rows(*small, 2, 1, 1),
                              F.conv_transpose2d(*small, stride=2, padding=1, output_padding=1), atol=1e-5)
        empty = torch.randn(0, 3, 5, 6), small[1], torch.randn(2)
        want = F.conv_transpose2d(*empty, stride=2, padding=1).shape
        assert want[0] == 0 and ch09.route_phase_rows(*empty, 2, 1).shape == fast(*empty, 2, 1).shape == want


def test_the_cost_formulas_agree_with_torchs_flop_counter_and_zero_insertion_wastes_s_squared():
    from torch.utils.flop_counter import FlopCounterMode

    r = ch09.REFERENCE
    shape = dict(N=r["N"], C_in=r["C_in"], H=r["H"], W=r["W"], C_out=r["C_out"], k=r["k"], s=r["stride"])
    x, w, b = ch09.reference_inputs()
    with FlopCounterMode(display=False) as counter:
        F.conv_transpose2d(x, w, b, stride=r["stride"], padding=r["padding"])
    assert counter.get_total_flops() // 2 == ch09.cost("torch", **shape)["macs"]
    zero = ch09.cost("zero insertion", **shape)["macs"] / ch09.cost("torch", **shape)["macs"]
    assert r["stride"] ** 2 * 0.9 < zero < r["stride"] ** 2 * 1.2


def test_the_solution_passes_values_and_speed(fast):
    assert ch06.check_conv_transpose2d(fast, part="general", suite="hidden", quiet=True) is None
    assert ch09.check_conv_transpose2d_speed(fast, quiet=True) is None  # a passing cell echoes nothing


def slow_but_correct(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Right, written as a learner's first loop: one stamp per input pixel (H·W small operations)."""
    N, C_in, H, W = input.shape
    _, C_out, kH, kW = weight.shape
    full = input.new_zeros(N, C_out, (H - 1) * stride + kH + output_padding, (W - 1) * stride + kW + output_padding)
    for i in range(H):
        for j in range(W):
            full[:, :, i * stride: i * stride + kH, j * stride: j * stride + kW] += torch.einsum(
                "nc,cokl->nokl", input[:, :, i, j], weight)
    out = full[..., padding: full.shape[-2] - padding, padding: full.shape[-1] - padding]
    return out if bias is None else out + bias.reshape(1, -1, 1, 1)


def test_a_correct_but_slow_kernel_fails_the_speed_part_with_its_ratio():
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64)
    w = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    assert torch.allclose(slow_but_correct(x, w, None, 2, 1), F.conv_transpose2d(x, w, None, 2, 1))
    with pytest.raises(CheckFailure, match=r"too slow .* ratio [0-9.]+x; at most 10x"):
        ch09.check_conv_transpose2d_speed(slow_but_correct, quiet=True)


def test_a_fast_but_wrong_kernel_fails_correctness_and_earns_no_speed(fast):
    def no_bias(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        return fast(input, weight, None, stride, padding, output_padding, groups, dilation)

    with pytest.raises(CheckFailure, match="bias"):
        ch06.check_conv_transpose2d(no_bias, part="general", quiet=True)
    with pytest.raises(CheckFailure, match="fix correctness first"):
        ch09.check_conv_transpose2d_speed(no_bias, quiet=True)


def test_calling_torchs_transposed_convolution_breaks_the_rule_and_a_stub_is_not_attempted():
    def cheat(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        return F.conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation)

    def stub(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        raise NotImplementedError()

    with pytest.raises(RuleViolation):
        ch09.check_conv_transpose2d_speed(cheat, quiet=True)
    with pytest.raises(NotAttempted):
        ch09.check_conv_transpose2d_speed(stub, quiet=True)


def test_the_baseline_is_bound_before_a_submission_could_replace_it(monkeypatch, fast):
    """Does slowing torch down from the submission's side change what the speed check measures against?"""
    import time

    def slow_torch(*args, **kwargs):
        time.sleep(0.3)
        return ch09._torch_conv_transpose2d(*args, **kwargs)

    monkeypatch.setattr(F, "conv_transpose2d", slow_torch)
    data = ch09.probe_speed(fast, runs=3)
    # a replaced baseline would take 0.3 s on every run; the bound one takes milliseconds on at least one
    # (the fastest run, so that a loaded machine cannot make this test fail)
    assert min(data["torch"]) < 0.3


def test_make_grade_times_the_speed_part_in_the_sandbox_and_names_a_slow_submission(tmp_path):
    """Does the grader give the speed points to a fast, right kernel and none to a slow one, with the ratio?"""
    import inspect

    from conftest import answers, grade_class

    aid = "ch09_making_it_fast"
    slow = inspect.getsource(slow_but_correct).replace("def slow_but_correct(", "def conv_transpose2d(")
    out, rows = grade_class(aid, {"fast": answers(aid), "slow": {"conv_transpose2d": slow}}, tmp_path)
    assert float(rows["fast"]["score"]) == 10
    assert float(rows["slow"]["test_conv_transpose2d_speed"]) == 0
    assert "too slow" in (out / "feedback" / "slow" / f"{aid}.html").read_text()
    # The passed speed part's feedback states the ratio and the optional challenge, which earns nothing.
    fast = (out / "feedback" / "fast" / f"{aid}.html").read_text()
    target = re.escape(f"{ch09.CHALLENGE_RATIO:g}×")
    assert re.search(rf"took [0-9.]+× PyTorch&#x27;s time .* asks for {target} or less: (reached|not reached yet)\.", fast)


def test_make_bench_times_the_fastest_route_or_every_route_on_one_and_the_default_threads(monkeypatch):
    """make bench's Chapter 9 rows (at tiny shapes here): the fastest route by default, every route with
    --every-route; one row per route, shape and thread count, each a real paired timing."""
    from autograder import bench

    tiny = dict(N=1, C_in=2, C_out=2, H=4, W=4, k=4, stride=2, padding=1)
    monkeypatch.setattr(ch09, "SHAPES", {"tiny a": tiny, "tiny b": dict(tiny, C_in=3)})
    threads = sorted({1, torch.get_num_threads()})
    rows = bench.bench_fastest_route(1)
    assert [r[0] for r in rows] == [
        f"ch09 fastest route ({ch09.FASTEST}) at {label} [cpu, {t} thread{'s' if t > 1 else ''}]"
        for t in threads for label in ("tiny a", "tiny b")]
    rows = bench.bench_fastest_route(1, routes=list(ch09.ROUTES))
    assert len(rows) == len(ch09.ROUTES) * 2 * len(threads)
    assert all(r[1] > 0 and r[3] > 0 and r[4] == r[4] for r in rows)
    assert torch.get_num_threads() == threads[-1]   # the default threads are given back


def test_every_route_has_a_cost_formula_and_an_unknown_route_has_none():
    shape = dict(N=2, C_in=4, H=8, W=8, C_out=3, k=4, s=2)
    useful = ch09.cost("torch", **shape)["macs"]
    for name in ch09.ROUTES:
        c = ch09.cost(name, **shape)
        assert c["macs"] >= useful and c["bytes"] > 0, name
    assert ch09.FASTEST in ch09.ROUTES
    with pytest.raises(KeyError):
        ch09.cost("no such route", **shape)


def test_the_challenge_reports_a_ratio_and_never_fails_the_cell_for_speed(fast, capsys):
    """Does the challenge cell print the ratio against its target for a fast, a slow and an unwritten kernel,
    without raising (it is worth no points)?"""
    def stub(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        raise NotImplementedError()

    ch09.report_conv_transpose2d_challenge(fast, runs=3)
    out = capsys.readouterr().out
    assert f"{ch09.CHALLENGE_RATIO:g}x" in out and ("challenge reached" in out or "not reached yet" in out)
    ch09.report_conv_transpose2d_challenge(slow_but_correct, runs=3)
    assert "challenge not reached yet" in capsys.readouterr().out
    ch09.report_conv_transpose2d_challenge(stub)
    assert "not attempted yet" in capsys.readouterr().out


def test_the_challenge_is_a_cell_worth_no_points_and_the_text_states_both_targets():
    """Is the challenge an ungraded cell (nbgrader awards it nothing) while the text names 10x and 1.5x?"""
    import json

    from autograder.paths import solution_notebook

    nb = json.loads(solution_notebook("ch09_making_it_fast").read_text())
    meta = {c["metadata"]["nbgrader"]["grade_id"]: (c, c["metadata"]["nbgrader"]) for c in nb["cells"]}
    cell, challenge = meta["challenge_speed"]
    assert challenge["grade"] is False and challenge["locked"] and "points" not in challenge
    assert "report_conv_transpose2d_challenge(conv_transpose2d)" in "".join(cell["source"])
    text = " ".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert f"{ch09.MAX_RATIO:g}×" in text and f"{ch09.CHALLENGE_RATIO:g}×" in text


def test_the_solutions_fast_path_keeps_gradients_and_reaches_past_the_last_stamp(fast):
    """Does the fast path (groups 1, dilation 1) give torch's values and gradients where output_padding reaches
    past the last stamp, with a rectangular kernel and stride?"""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, generator=g, dtype=torch.float64, requires_grad=True)
    kw = dict(stride=(3, 4), padding=(1, 0), output_padding=(2, 3))
    assert torch.allclose(fast(x, w, b, **kw), F.conv_transpose2d(x, w, b, **kw))
    assert torch.autograd.gradcheck(lambda x, w, b: fast(x, w, b, **kw), (x, w, b))
