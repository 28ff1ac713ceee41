"""The book's animations: their frames compute what torch computes, and their players show them."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from autograder.book import animations
from autograder.book.animations import Rect

FRAME = re.compile(r'frames\[(\d+)\] = "data:image/png;base64,')


def t(a) -> torch.Tensor:
    """A (1, 1, H, W) float64 tensor of a 2-D array, as torch's functions want it."""
    return torch.as_tensor(np.asarray(a, dtype=np.float64))[None, None]


def torch_or_error(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)[0, 0].numpy()
    except RuntimeError:
        return None


# --------------------------------------------------------------------------
# hand-worked cases

X3 = [[1, 2, 0],
      [0, 1, 3],
      [2, 0, 1]]
W2 = [[1, 0],
      [0, 2]]                      # output[r, c] = x[r, c] + 2 * x[r + 1, c + 1]


def test_a_hand_worked_convolution_slides_row_by_row():
    """Does a 2x2 kernel on a 3x3 input give four windows, written in reading order, with these sums?"""
    frames = animations.conv2d_frames(X3, W2)
    assert [f.window for f in frames] == [Rect(0, 0, 2, 2), Rect(0, 1, 2, 2), Rect(1, 0, 2, 2), Rect(1, 1, 2, 2)]
    assert [f.out_pos for f in frames] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert [f.value for f in frames] == [3, 8, 0, 3]
    np.testing.assert_array_equal(frames[0].output, [[3, np.nan], [np.nan, np.nan]])   # not yet written: NaN
    np.testing.assert_array_equal(frames[-1].output, [[3, 8], [0, 3]])
    assert all(f.padded_taps == 0 for f in frames)


def test_a_hand_worked_padded_strided_convolution_counts_the_padding_taps():
    """With padding 1 and stride 2, does the first window sit on three zeros and the last on none?"""
    frames = animations.conv2d_frames(X3, W2, stride=2, padding=1)
    assert [f.window for f in frames] == [Rect(0, 0, 2, 2), Rect(0, 2, 2, 2), Rect(2, 0, 2, 2), Rect(2, 2, 2, 2)]
    assert [f.padded_taps for f in frames] == [3, 2, 2, 0]
    assert frames[0].value == 2                                   # only x[0, 0] * w[1, 1] = 1 * 2 is real
    np.testing.assert_array_equal(frames[-1].output, F.conv2d(t(X3), t(W2), stride=2, padding=1)[0, 0])


def test_a_hand_worked_transposed_convolution_stamps_crops_and_gives_back():
    """x = [1, -1], w = [1, 2, 3], stride 2: stamps [1 2 3 . .] and [. . -1 -2 -3] sum to [1 2 2 -2 -3];
    padding 1 crops one cell at each end, output_padding 1 gives the last one back."""
    frames = animations.conv_transpose2d_frames([[1, -1]], [[1, 2, 3]], stride=(1, 2), padding=(0, 1),
                                                output_padding=(0, 1))
    assert [f.stamp for f in frames] == [Rect(0, 0, 1, 3), Rect(0, 2, 1, 3)]
    np.testing.assert_array_equal(frames[0].canvas, [[1, 2, 3, 0, 0]])
    np.testing.assert_array_equal(frames[1].canvas, [[1, 2, 2, -2, -3]])
    np.testing.assert_array_equal(frames[1].coverage, [[1, 1, 2, 1, 1]])
    assert frames[1].crop == Rect(0, 1, 1, 4) and frames[1].reach == (1, 5)
    np.testing.assert_array_equal(frames[1].output, [[2, 2, -2, -3]])
    np.testing.assert_array_equal(frames[1].added_by_output_padding, [[False, False, False, False, True]])
    torch_out = F.conv_transpose2d(t([[1, -1]]), t([[1, 2, 3]]), stride=(1, 2), padding=(0, 1), output_padding=(0, 1))
    np.testing.assert_array_equal(frames[1].output, torch_out[0, 0])


def test_output_padding_without_padding_appends_zeros_past_the_last_stamp():
    """With padding 0, is the canvas extended by output_padding, with zeros that no stamp covers?"""
    last = animations.conv_transpose2d_frames([[1, 2]], [[1, 1]], stride=3, output_padding=2)[-1]
    assert last.reach == (1, 5) and last.canvas.shape == (3, 7)
    np.testing.assert_array_equal(last.canvas, [[1, 1, 0, 2, 2, 0, 0], [0] * 7, [0] * 7])
    assert last.added_by_output_padding.sum() == 3 * 7 - 1 * 5
    assert (last.coverage[last.added_by_output_padding] == 0).all()


def test_a_hand_worked_zero_insertion_spreads_pads_and_slides_the_rotated_kernel():
    """x = [1, -1], w = [1, 2, 3], stride 2, padding 1, output_padding 1: the spread input [1 0 -1] gets
    k - 1 - p = 1 zero at each end and 1 more for output_padding; [3 2 1] slides over [0 1 0 -1 0 0]."""
    zi, frames = animations.zero_insertion_frames([[1, -1]], [[1, 2, 3]], stride=(1, 2), padding=(0, 1),
                                                  output_padding=(0, 1))
    np.testing.assert_array_equal(zi.grid, [[0, 1, 0, -1, 0, 0]])
    P, I, Z, O = (animations.PADDING_ZERO, animations.INSERTED_ZERO, animations.INPUT_PIXEL,
                  animations.OUTPUT_PADDING_ZERO)
    np.testing.assert_array_equal(zi.kind, [[P, Z, I, Z, P, O]])
    np.testing.assert_array_equal(zi.kernel, [[3, 2, 1]])
    assert zi.border == (0, 1)
    assert [f.window for f in frames] == [Rect(0, c, 1, 3) for c in range(4)]
    assert [f.value for f in frames] == [2, 2, -2, -3]
    assert [f.padded_taps for f in frames] == [2, 1, 2, 2]
    torch_out = F.conv_transpose2d(t([[1, -1]]), t([[1, 2, 3]]), stride=(1, 2), padding=(0, 1), output_padding=(0, 1))
    np.testing.assert_array_equal(frames[-1].output, torch_out[0, 0])


# --------------------------------------------------------------------------
# every setting, against torch

small = st.integers(1, 5)
pairs = st.one_of(st.integers(0, 3), st.tuples(st.integers(0, 3), st.integers(0, 3)))


def grid(rows, cols):
    return arrays(np.int64, (rows, cols), elements=st.integers(-3, 3))   # asymmetric integers: exact in float64


@settings(max_examples=150, deadline=None)
@given(data=st.data(), H=small, W=small, kH=st.integers(1, 4), kW=st.integers(1, 4), stride=pairs, padding=pairs)
def test_sliding_frames_compute_conv2d_one_window_per_output_cell(data, H, W, kH, kW, stride, padding):
    """For any shapes, stride and padding: one frame per output cell, each window where the stride puts
    it, and the last frame's output equal to F.conv2d — or a ValueError exactly where torch refuses."""
    x, w = data.draw(grid(H, W)), data.draw(grid(kH, kW))
    expected = torch_or_error(F.conv2d, t(x), t(w), stride=stride, padding=padding)
    if expected is None:
        with pytest.raises(ValueError):
            animations.conv2d_frames(x, w, stride, padding)
        return
    frames = animations.conv2d_frames(x, w, stride, padding)
    sH, sW = (stride, stride) if isinstance(stride, int) else stride
    assert len(frames) == expected.size
    np.testing.assert_array_equal(frames[-1].output, expected)
    padded, _ = animations.pad_grid(x, padding)
    for n, f in enumerate(frames):
        r, c = f.out_pos
        assert (r, c) == divmod(n, expected.shape[1])
        assert f.window == Rect(r * sH, c * sW, kH, kW)
        np.testing.assert_array_equal(f.products, padded[f.window.rows, f.window.cols] * w)
        assert f.output[r, c] == f.value and np.isnan(f.output).sum() == expected.size - n - 1


@settings(max_examples=150, deadline=None)
@given(data=st.data(), H=st.integers(1, 4), W=st.integers(1, 4), kH=st.integers(1, 4), kW=st.integers(1, 4),
       stride=pairs, padding=pairs, output_padding=st.one_of(st.integers(0, 2), st.tuples(st.integers(0, 2),
                                                                                          st.integers(0, 2))))
def test_stamping_frames_compute_conv_transpose2d_one_stamp_per_input_pixel(data, H, W, kH, kW, stride, padding,
                                                                            output_padding):
    """For any shapes, stride, padding and output_padding: one frame per input pixel, each adding its value
    times the kernel at (i*s, j*s); the uncropped canvas is the padding-0 transposed convolution, and
    the cropped output is F.conv_transpose2d — or a ValueError exactly where torch refuses."""
    x, w = data.draw(grid(H, W)), data.draw(grid(kH, kW))
    args = {"stride": stride, "padding": padding, "output_padding": output_padding}
    expected = torch_or_error(F.conv_transpose2d, t(x), t(w), **args)
    if expected is None:
        with pytest.raises(ValueError):
            animations.conv_transpose2d_frames(x, w, **args)
        return
    frames = animations.conv_transpose2d_frames(x, w, **args)
    sH, sW = (stride, stride) if isinstance(stride, int) else stride
    assert len(frames) == x.size
    np.testing.assert_array_equal(frames[-1].output, expected)
    previous = np.zeros_like(frames[0].canvas)
    for n, f in enumerate(frames):
        i, j = divmod(n, W)
        assert f.in_pos == (i, j) and f.value == x[i, j]
        assert f.stamp == Rect(i * sH, j * sW, kH, kW)
        added = f.canvas - previous
        np.testing.assert_array_equal(added[f.stamp.rows, f.stamp.cols], x[i, j] * w)
        added[f.stamp.rows, f.stamp.cols] = 0
        assert not added.any(), "a stamp changed cells outside its rectangle"
        previous = f.canvas
    last = frames[-1]
    rH, rW = last.reach
    full = F.conv_transpose2d(t(x), t(w), stride=stride)[0, 0].numpy()      # padding 0: nothing cropped
    np.testing.assert_array_equal(last.canvas[:rH, :rW], full)
    assert not last.canvas[rH:].any() and not last.canvas[:, rW:].any()    # past the reach: zeros
    ones = F.conv_transpose2d(t(np.ones_like(x)), t(np.ones_like(w)), stride=stride)[0, 0].numpy()
    np.testing.assert_array_equal(last.coverage[:rH, :rW], ones)
    oH, oW = (output_padding, output_padding) if isinstance(output_padding, int) else output_padding
    without = torch_or_error(F.conv_transpose2d, t(x), t(w), stride=stride, padding=padding)
    kept_without = 0 if without is None else without.size
    assert last.added_by_output_padding.sum() == expected.size - kept_without
    if without is not None:
        np.testing.assert_array_equal(expected[:expected.shape[0] - oH, :expected.shape[1] - oW], without)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), H=st.integers(1, 4), W=st.integers(1, 4), kH=st.integers(1, 4), kW=st.integers(1, 4),
       stride=pairs, padding=pairs, output_padding=st.one_of(st.integers(0, 2), st.tuples(st.integers(0, 2),
                                                                                          st.integers(0, 2))))
def test_zero_insertion_frames_compute_conv_transpose2d_one_window_per_output_cell(data, H, W, kH, kW, stride,
                                                                                 padding, output_padding):
    """For any shapes, stride, padding <= kernel - 1 and output_padding: the input sits stride apart inside
    k - 1 - p zeros, every other cell is zero, the rotated kernel slides with stride 1, and the last
    output is F.conv_transpose2d — or a ValueError where torch refuses or the view would need a crop."""
    x, w = data.draw(grid(H, W)), data.draw(grid(kH, kW))
    args = {"stride": stride, "padding": padding, "output_padding": output_padding}
    expected = torch_or_error(F.conv_transpose2d, t(x), t(w), **args)
    pH, pW = (padding, padding) if isinstance(padding, int) else padding
    if expected is None or pH > kH - 1 or pW > kW - 1:
        with pytest.raises(ValueError):
            animations.zero_insertion_frames(x, w, **args)
        return
    zi, frames = animations.zero_insertion_frames(x, w, **args)
    sH, sW = (stride, stride) if isinstance(stride, int) else stride
    eH, eW = zi.border
    assert (eH, eW) == (kH - 1 - pH, kW - 1 - pW)
    np.testing.assert_array_equal(zi.grid[eH:eH + (H - 1) * sH + 1:sH, eW:eW + (W - 1) * sW + 1:sW], x)
    inputs = zi.kind == animations.INPUT_PIXEL
    assert inputs.sum() == x.size and not zi.grid[~inputs].any()
    np.testing.assert_array_equal(zi.kernel, w[::-1, ::-1])
    assert len(frames) == expected.size
    np.testing.assert_array_equal(frames[-1].output, expected)
    for n, f in enumerate(frames):
        r, c = f.out_pos
        assert (r, c) == divmod(n, expected.shape[1]) and f.window == Rect(r, c, kH, kW)
        assert f.padded_taps == (~inputs[f.window.rows, f.window.cols]).sum()


# --------------------------------------------------------------------------
# bad arguments

@pytest.mark.parametrize("call, name", [
    (lambda: animations.conv2d_frames(X3, np.ones((4, 4))), "kernel"),
    (lambda: animations.conv2d_frames(X3, np.ones((4, 4)), padding=0), "padding"),
    (lambda: animations.conv2d_frames(X3, W2, stride=0), "stride"),
    (lambda: animations.conv2d_frames(X3, W2, stride=1.5), "stride"),
    (lambda: animations.conv2d_frames(X3, W2, padding=-1), "padding"),
    (lambda: animations.conv2d_frames(np.ones((1, 1, 3, 3)), W2), "input"),
    (lambda: animations.conv2d_frames(X3, np.ones((0, 2))), "kernel"),
    (lambda: animations.conv2d_frames([[1, np.nan]], [[1]]), "input"),
    (lambda: animations.conv_transpose2d_frames(X3, W2, stride=2, output_padding=2), "output_padding"),
    (lambda: animations.conv_transpose2d_frames(X3, W2, stride=1, output_padding=1), "output_padding"),
    (lambda: animations.conv_transpose2d_frames([[1]], W2, padding=1), "padding"),
    (lambda: animations.conv_transpose2d_frames(X3, W2, stride=(1, 2, 3)), "stride"),
    (lambda: animations.sliding_html(np.ones((8, 8)), W2), "max_frames"),
    (lambda: animations.stamping_html(np.ones((7, 7)), W2, max_frames=40), "max_frames"),
    (lambda: animations.zero_insertion_frames(X3, W2, padding=2), "padding"),
    (lambda: animations.zero_insertion_frames(X3, W2, stride=2, output_padding=2), "output_padding"),
    (lambda: animations.zero_insertion_html(np.ones((5, 5)), W2, stride=2), "max_frames"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_arguments_raise_a_value_error_that_names_the_parameter(call, name):
    before = plt.get_fignums()
    with pytest.raises(ValueError, match=name):
        call()
    assert plt.get_fignums() == before, "a refused animation left a figure open"


# --------------------------------------------------------------------------
# the players (two small renders)

def frame_numbers(page: str) -> list[int]:
    return [int(n) for n in FRAME.findall(page)]


def test_sliding_player_has_one_frame_per_kernel_position_and_labels_its_grids():
    """Does the offline player hold one PNG per kernel position, label input and output, and need no network?"""
    before = plt.get_fignums()
    page = animations.sliding_html(X3, W2, stride=1, padding=1)     # 5x5 padded, 2x2 kernel: 4x4 = 16 positions
    assert plt.get_fignums() == before, "the figure must be closed, or the page shows it a second time"
    frames = animations.conv2d_frames(X3, W2, stride=1, padding=1)
    assert frame_numbers(page) == list(range(len(frames))) == list(range(16))
    assert f"new Array({len(frames)})" in page
    assert "input 3×3" in page and "padding 1" in page and "output 4×4" in page
    assert 'type="range"' in page and "play_animation" in page         # matplotlib's player, with its controls
    assert 'value="once"' in page and re.search(r'value="once"[^>]*\n\s*checked', page)
    assert "http://" not in page and "https://" not in page, "the page must work offline"
    assert len(page) / len(frames) < 80_000, "frames this small should be a few tens of kB each"


def test_stamping_player_draws_labelled_grids_and_the_final_output():
    """Does the drawing label input, canvas and output, mark cropped and output_padding cells, and end on
    the last stamp — with one frame per input pixel in the player?"""
    x = [[1, 2], [3, -1]]
    w = [[1, 0, 2], [0, 1, 0], [1, 1, 0]]
    fig, anim = animations.stamping_animation(x, w, stride=2, padding=1, output_padding=1)
    try:
        page = anim.to_jshtml(default_mode="once")
        texts = [text.get_text() for text in fig.axes[0].texts]
    finally:
        plt.close(fig)
    assert frame_numbers(page) == [0, 1, 2, 3]
    assert "input 2×2" in texts and "kernel 3×3" in texts
    assert "output 4×4 (green frame)\non the full 5×5 canvas" in texts
    assert "cropped by padding 1" in texts
    assert any(s.startswith("kept by output_padding 1") for s in texts)
    assert "input[1, 1] = -1: add -1 × kernel into canvas rows 2–4, columns 2–4" in texts
    assert "frame 4/4" in texts
    out = F.conv_transpose2d(t(x), t(w), stride=2, padding=1, output_padding=1)[0, 0]
    shown = {s for s in texts}
    assert all(animations._num(v) in shown for v in out.flatten().tolist()), "every output value is printed"


def test_zero_insertion_player_labels_the_zeros_the_window_and_the_output():
    """Does the zero-insertion drawing say what each kind of zero is, show the rotated kernel's weights and
    every output value, and does its offline player hold one frame per output cell?"""
    x = [[1, 2], [3, -1]]
    w = [[1, 0, 2], [0, 1, 0], [1, 1, 0]]
    before = plt.get_fignums()
    page = animations.zero_insertion_html(x, w, stride=2, padding=1, output_padding=1)
    assert plt.get_fignums() == before
    assert frame_numbers(page) == list(range(16))                        # output 4x4
    assert "http://" not in page and "https://" not in page
    assert 'alt="Transposed convolution as zero insertion' in page
    fig, anim = animations.zero_insertion_animation(x, w, stride=2, padding=1, output_padding=1)
    try:
        anim._draw_frame(15)
        anim._draw_was_started = True      # drawn by hand: no "deleted without rendering" warning
        texts = [text.get_text() for text in fig.axes[0].texts]
        sizes = [text.get_fontsize() for text in fig.axes[0].texts]
    finally:
        plt.close(fig)
    assert "input 2×2, spread and padded: 6×6" in texts and "output 4×4" in texts
    assert any(s.startswith("1 zero inserted between pixels") for s in texts)
    assert "padding: k − 1 − p = 1 zeros on each side" in texts
    assert any(s.startswith("output_padding 1") for s in texts)
    assert "×1" in texts and "frame 16/16" in texts
    out = F.conv_transpose2d(t(x), t(w), stride=2, padding=1, output_padding=1)[0, 0]
    assert all(animations._num(v) in texts for v in out.flatten().tolist()), "every output value is printed"
    assert min(sizes) >= animations.MIN_FONT


@pytest.mark.parametrize("make", [
    lambda: animations.sliding_animation(X3, W2, stride=1, padding=1),
    lambda: animations.stamping_animation(X3, W2, stride=2, padding=1, output_padding=1),
    lambda: animations.zero_insertion_animation(X3, W2, stride=2, padding=1, output_padding=1),
], ids=["sliding", "stamping", "zero insertion"])
def test_every_text_of_a_player_is_legible_at_its_natural_size(make):
    """Is every text at least MIN_FONT points (80 dpi, shown at natural size: 11 px), and does the frame fit
    the book's column (688 CSS px in a 1280 px window)?"""
    fig, anim = make()
    try:
        anim._draw_frame(0)
        anim._draw_was_started = True      # drawn by hand: no "deleted without rendering" warning
        sizes = [text.get_fontsize() for text in fig.axes[0].texts]
        width_px = fig.get_size_inches()[0] * fig.dpi
    finally:
        plt.close(fig)
    assert min(sizes) >= animations.MIN_FONT >= 10
    assert width_px <= 688
