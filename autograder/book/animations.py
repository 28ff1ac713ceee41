"""Animations for the book: a convolution's kernel *sliding*, a transposed convolution's kernel *stamping*,
and the same transposed convolution as *zero insertion* (spread the input, pad it, slide the flipped kernel).

Two layers, kept apart so that the tests can check the first against torch:

* **geometry** — pure functions that list the frames of an animation:
  ``conv2d_frames`` gives one frame per kernel position (the window it covers
  in the padded input, the products, the output written so far);
  ``conv_transpose2d_frames`` gives one frame per input pixel (the rectangle
  its scaled kernel is added into, the full uncropped canvas so far, the part
  of it that ``padding`` keeps); ``zero_insertion_frames`` spreads the input
  with ``stride - 1`` zeros between pixels, pads it with ``kernel - 1 - padding``
  zeros (``output_padding`` more at the end) and gives one frame per position of
  the 180°-rotated kernel, whose last output is the transposed convolution.
* **drawing** — ``sliding_animation`` / ``stamping_animation`` /
  ``zero_insertion_animation`` draw those frames into a
  ``matplotlib.animation.FuncAnimation``; ``sliding_html`` / ``stamping_html`` /
  ``zero_insertion_html`` render it to an offline JS-HTML player for a book page
  (``IPython.display.HTML(...)``), and close the figure.

Every text in a frame is at least :data:`MIN_FONT` points; frames are PNGs at 80 dpi shown at their
natural size, so that is 80/72 px per point in the browser.

Grids are single-channel 2-D tensors or arrays, ideally small and
integer-valued so that every number fits in its cell.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.animation import FuncAnimation
from matplotlib.patches import Rectangle

from .._arith import pair
from .figures import INPUT_COLOR, INPUT_LIGHT, KERNEL_COLOR, KERNEL_LIGHT, OUTPUT_COLOR, OUTPUT_LIGHT, PAD_COLOR

# --------------------------------------------------------------------------
# geometry


@dataclass(frozen=True)
class Rect:
    """A block of grid cells: its top-left cell (row, col) and its size."""

    row: int
    col: int
    height: int
    width: int

    @property
    def rows(self) -> slice:
        """The block's rows, as a slice of the grid."""
        return slice(self.row, self.row + self.height)

    @property
    def cols(self) -> slice:
        """The block's columns, as a slice of the grid."""
        return slice(self.col, self.col + self.width)

    def describe(self) -> str:
        """The block's rows and columns as text, e.g. "rows 0–1, columns 3"."""
        def span(start, size):
            return f"{start}" if size == 1 else f"{start}–{start + size - 1}"
        return f"rows {span(self.row, self.height)}, columns {span(self.col, self.width)}"


@dataclass(frozen=True, eq=False)
class SlideFrame:
    """One kernel position of a convolution: it gathers a window into one output cell."""

    out_pos: tuple[int, int]   # the output cell this position writes
    window: Rect               # the kernel's footprint, in padded-input coordinates
    products: np.ndarray       # window * kernel, element by element: (kH, kW)
    padded_taps: int           # how many of those products multiply a zero that is not an input pixel
    #                            (padding; in the zero-insertion view also the inserted zeros)
    output: np.ndarray         # the output after this position; NaN where nothing is written yet

    @property
    def value(self) -> float:
        """The number written into ``output[out_pos]``: the sum of the products."""
        return float(self.products.sum())


@dataclass(frozen=True, eq=False)
class StampFrame:
    """One input pixel of a transposed convolution: it adds value * kernel into the canvas."""

    in_pos: tuple[int, int]    # the input pixel that stamps
    value: float               # its value, the kernel's scale
    stamp: Rect                # where value * kernel is added, in canvas coordinates
    canvas: np.ndarray         # the full, uncropped output after this stamp (zeros where no stamp reached)
    coverage: np.ndarray       # how many stamps so far covered each canvas cell
    crop: Rect                 # the part of the canvas that is the output (padding crops the rest)
    reach: tuple[int, int]     # the canvas size the stamps can reach: ((H-1)*sH + kH, (W-1)*sW + kW)

    @property
    def output(self) -> np.ndarray:
        """The output so far: the canvas, cropped by padding (and extended by output_padding)."""
        return self.canvas[self.crop.rows, self.crop.cols]

    @property
    def added_by_output_padding(self) -> np.ndarray:
        """Boolean canvas mask: the output cells that exist only because of ``output_padding``.

        Without output_padding the output would end ``padding`` cells before the reach
        of the stamps; output_padding keeps (or, past the reach, appends) more.
        """
        mask = np.zeros(self.canvas.shape, dtype=bool)
        inside = np.zeros_like(mask)
        inside[self.crop.rows, self.crop.cols] = True
        top, left = self.crop.row, self.crop.col
        mask[self.reach[0] - top:, :] = True   # rows past where the output ends without it
        mask[:, self.reach[1] - left:] = True  # (reach - padding, as padding == crop's corner)
        return mask & inside


def _grid(value, name: str) -> np.ndarray:
    """A 2-D float64 copy of a tensor / array / nested list, or a ValueError naming the argument."""
    if hasattr(value, "detach"):                         # a torch tensor, on any device
        value = value.detach().cpu().double().numpy()
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 2-D grid of numbers; got {type(value).__name__}") from None
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D grid (rows, columns); got shape {tuple(arr.shape)}"
                         + (" — pass one channel, e.g. x[0, 0]" if arr.ndim == 4 else ""))
    if arr.size == 0:
        raise ValueError(f"{name} must have at least one row and one column; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must hold finite numbers")
    return arr


def _pair(value, name: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each >= minimum, as (height, width). Stricter than
    `_arith.pair`, which expands it: a float or a bool is refused here, not truncated."""
    items = value if isinstance(value, (tuple, list)) else (value,)
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in items):
        raise ValueError(f"{name} must be an int or a pair of ints; got {value!r}")
    out = pair(value, name)
    if min(out) < minimum:
        raise ValueError(f"{name} must be at least {minimum}; got {value!r}")
    return out


def _size(shape) -> str:
    return f"{shape[0]}×{shape[1]}"


def pad_grid(input, padding=0) -> tuple[np.ndarray, np.ndarray]:
    """The input with ``padding`` zeros on every side, and a mask of which cells are padding."""
    x = _grid(input, "input")
    ph, pw = _pair(padding, "padding", 0)
    padded = np.pad(x, ((ph, ph), (pw, pw)))
    is_padding = np.pad(np.zeros(x.shape, dtype=bool), ((ph, ph), (pw, pw)), constant_values=True)
    return padded, is_padding


def conv2d_frames(input, kernel, stride=1, padding=0) -> list[SlideFrame]:
    """The frames of a convolution ``F.conv2d(input, kernel, stride=stride, padding=padding)``, one per
    kernel position, in the order the output is written (row by row).

    (H, W) x (kH, kW) -> (H_out, W_out), H_out = (H + 2*padding - kH) // stride + 1.
    """
    x, w = _grid(input, "input"), _grid(kernel, "kernel")
    sh, sw = _pair(stride, "stride", 1)
    padded, is_padding = pad_grid(x, padding)
    (Hp, Wp), (kh, kw) = padded.shape, w.shape
    if kh > Hp or kw > Wp:
        ph, pw = _pair(padding, "padding", 0)
        raise ValueError(
            f"kernel {_size(w.shape)} is larger than the padded input {Hp}×{Wp} (input {_size(x.shape)} "
            f"plus padding {ph if ph == pw else (ph, pw)} on each side): it fits nowhere, so the output "
            "would be empty. Use a smaller kernel or more padding.")
    return _slide(padded, is_padding, w, sh, sw)


def _slide(padded: np.ndarray, is_zero: np.ndarray, w: np.ndarray, sh: int, sw: int) -> list[SlideFrame]:
    """Slide ``w`` over ``padded`` with stride (sh, sw): one frame per position, row by row.
    ``is_zero`` marks the cells that are not input pixels (counted in ``padded_taps``)."""
    (Hp, Wp), (kh, kw) = padded.shape, w.shape
    H_out, W_out = (Hp - kh) // sh + 1, (Wp - kw) // sw + 1       # positions the kernel fits at, every s-th
    output = np.full((H_out, W_out), np.nan)
    frames = []
    for r in range(H_out):
        for c in range(W_out):
            window = Rect(r * sh, c * sw, kh, kw)                  # the kernel's top-left tap at (r*s, c*s)
            products = padded[window.rows, window.cols] * w
            output[r, c] = products.sum()
            frames.append(SlideFrame((r, c), window, products, int(is_zero[window.rows, window.cols].sum()),
                                     output.copy()))
    return frames


def conv_transpose2d_frames(input, kernel, stride=1, padding=0, output_padding=0) -> list[StampFrame]:
    """The frames of ``F.conv_transpose2d(input, kernel, stride=stride, padding=padding,
    output_padding=output_padding)``, one per input pixel, row by row.

    (H, W) x (kH, kW) -> (H_out, W_out), H_out = (H - 1)*stride - 2*padding + kH + output_padding.
    Input pixel (i, j) adds input[i, j] * kernel into the full canvas with its corner at (i*s, j*s);
    the output is the canvas without ``padding`` cells at each end, and ``output_padding`` more
    at the bottom and the right.
    """
    x, w, (sh, sw), (ph, pw), (oh, ow) = _transposed_arguments(input, kernel, stride, padding, output_padding)
    (H, W), (kh, kw) = x.shape, w.shape
    reach = ((H - 1) * sh + kh, (W - 1) * sw + kw)                  # the last stamp ends here
    H_out, W_out = reach[0] - 2 * ph + oh, reach[1] - 2 * pw + ow
    if H_out < 1 or W_out < 1:
        raise ValueError(
            f"padding {padding!r} crops {2 * ph}×{2 * pw} cells from a {reach[0]}×{reach[1]} canvas "
            f"(plus output_padding {output_padding!r}): the output would be empty. Use less padding.")
    crop = Rect(ph, pw, H_out, W_out)
    canvas = np.zeros((max(reach[0], ph + H_out), max(reach[1], pw + W_out)))   # output_padding may pass the reach
    coverage = np.zeros(canvas.shape, dtype=np.int64)
    frames = []
    for i in range(H):
        for j in range(W):
            stamp = Rect(i * sh, j * sw, kh, kw)                      # the stamp's corner at (i*s, j*s)
            canvas[stamp.rows, stamp.cols] += x[i, j] * w
            coverage[stamp.rows, stamp.cols] += 1
            frames.append(StampFrame((i, j), float(x[i, j]), stamp, canvas.copy(), coverage.copy(), crop, reach))
    return frames


#: Cell kinds of the zero-insertion grid.
INPUT_PIXEL, INSERTED_ZERO, PADDING_ZERO, OUTPUT_PADDING_ZERO = 0, 1, 2, 3


@dataclass(frozen=True, eq=False)
class ZeroInsertion:
    """The input of the zero-insertion view: spread out, padded; and the kernel it convolves with."""

    grid: np.ndarray           # the spread, padded input
    kind: np.ndarray           # per cell: INPUT_PIXEL, INSERTED_ZERO, PADDING_ZERO or OUTPUT_PADDING_ZERO
    kernel: np.ndarray         # the kernel rotated by 180° (flipped in both axes)
    border: tuple[int, int]    # zeros added on each side: kernel - 1 - padding, per axis


def zero_insertion_frames(input, kernel, stride=1, padding=0, output_padding=0
                          ) -> tuple[ZeroInsertion, list[SlideFrame]]:
    """The transposed convolution ``F.conv_transpose2d(input, kernel, stride, padding, output_padding)``
    as view 2 of the book: put ``stride - 1`` zeros between neighbouring input pixels, add
    ``kernel - 1 - padding`` zeros on every side (``output_padding`` more at the bottom and the right),
    then slide the kernel rotated by 180° with stride 1 — one frame per output cell, row by row.

    (H, W) x (kH, kW) -> (H_out, W_out), H_out = (H - 1)*stride - 2*padding + kH + output_padding, as
    ``conv_transpose2d_frames``. A padding larger than ``kernel - 1`` would crop the spread input
    instead of padding it, which this picture cannot show: it is refused.
    """
    x, w, (sh, sw), (ph, pw), (oh, ow) = _transposed_arguments(input, kernel, stride, padding, output_padding)
    (H, W), (kh, kw) = x.shape, w.shape
    eh, ew = kh - 1 - ph, kw - 1 - pw
    if eh < 0 or ew < 0:
        raise ValueError(
            f"padding {padding!r} is larger than kernel - 1 ({kh - 1}, {kw - 1}): the zero-insertion view "
            "would pad by a negative amount (a crop). Use padding <= kernel - 1.")
    spread_h, spread_w = (H - 1) * sh + 1, (W - 1) * sw + 1
    grid = np.zeros((spread_h + 2 * eh + oh, spread_w + 2 * ew + ow))
    kind = np.full(grid.shape, PADDING_ZERO)
    kind[eh:eh + spread_h, ew:ew + spread_w] = INSERTED_ZERO
    kind[eh + spread_h + eh:, :] = OUTPUT_PADDING_ZERO         # output_padding: rows and columns at the end
    kind[:, ew + spread_w + ew:] = OUTPUT_PADDING_ZERO
    rows, cols = slice(eh, eh + spread_h, sh), slice(ew, ew + spread_w, sw)
    grid[rows, cols] = x                                       # the input pixels, stride apart
    kind[rows, cols] = INPUT_PIXEL
    flipped = w[::-1, ::-1].copy()
    if grid.shape[0] < kh or grid.shape[1] < kw:               # only when the output would be empty
        raise ValueError("the output would be empty: use a larger input or output_padding")
    zi = ZeroInsertion(grid, kind, flipped, (eh, ew))
    return zi, _slide(grid, kind != INPUT_PIXEL, flipped, 1, 1)


# --------------------------------------------------------------------------
# drawing

HATCH = "///"
HATCH_END = "xxx"          # output_padding's zeros in the zero-insertion view
HATCH_COLOR = "0.68"
CELL_INCHES = 0.45
MIN_FONT = 10              # points; every text of a frame is at least this large


def _num(v: float) -> str:
    """A cell label: integers without a decimal point, -0 as 0, anything else to 3 digits."""
    v = float(v) + 0.0
    return f"{v:.0f}" if v == round(v) and abs(v) < 1e6 else f"{v:.3g}"

def _window_and_output(ax, win, Wp, input_title, output, out_top, out_left, r0, c0) -> None:
    """A sliding-window frame's common part: the kernel's window outlined over the input (titled), the output
    written so far with the cell (r0, c0) this position writes, and the arrow from the window to that cell."""
    H_out, W_out = output.shape
    _outline(ax, win.row, win.col, win.height, win.width, KERNEL_COLOR)
    ax.text(Wp / 2, -0.25, input_title, ha="center", va="bottom", fontsize=MIN_FONT, color=INPUT_COLOR,
            weight="bold")
    for r in range(H_out):
        for c in range(W_out):
            v = output[r, c]
            _cell(ax, out_top + r, out_left + c, face=OUTPUT_LIGHT if (r, c) == (r0, c0) else "white",
                  text=None if np.isnan(v) else _num(v))
    _outline(ax, out_top + r0, out_left + c0, 1, 1, OUTPUT_COLOR)
    ax.text(out_left + W_out / 2, out_top - 0.25, f"output {H_out}×{W_out}", ha="center", va="bottom",
            fontsize=MIN_FONT, color=OUTPUT_COLOR, weight="bold")
    ax.annotate("", xy=(out_left + c0 - 0.05, out_top + r0 + 0.5),
                xytext=(win.col + win.width + 0.1, win.row + win.height / 2),
                arrowprops={"arrowstyle": "-|>", "color": OUTPUT_COLOR, "lw": 1.4,
                            "connectionstyle": "arc3,rad=-0.15"},
                zorder=2.5)   # above the cells, under their numbers

def _transposed_arguments(input, kernel, stride, padding, output_padding):
    """A transposed convolution's arguments for a player, checked: the input and kernel grids and the
    (height, width) pairs of stride, padding and output_padding (which must stay below the stride)."""
    x, w = _grid(input, "input"), _grid(kernel, "kernel")
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    oh, ow = _pair(output_padding, "output_padding", 0)
    if oh >= sh or ow >= sw:
        raise ValueError(
            f"output_padding must be smaller than stride (got output_padding={output_padding!r}, "
            f"stride={stride!r}): it chooses among the stride's possible output sizes, so it can be at "
            "most stride - 1.")
    return x, w, (sh, sw), (ph, pw), (oh, ow)




def _factor(v: float) -> str:
    """A factor in a written-out product: negative numbers in parentheses."""
    return f"({_num(v)})" if v < 0 else _num(v)


def _cell(ax, top, left, *, face="white", hatch=None, text=None, color="black", fontsize=MIN_FONT, edge="0.35"):
    ax.add_patch(Rectangle((left, top), 1, 1, facecolor=face, edgecolor=edge, lw=0.7, hatch=hatch,
                           hatchcolor=HATCH_COLOR))   # a light hatch, so that the number on it stays legible
    if text is not None:
        ax.text(left + 0.5, top + 0.5, text, ha="center", va="center", fontsize=fontsize, color=color)


def _outline(ax, top, left, height, width, color, lw=2.8, ls="-"):
    ax.add_patch(Rectangle((left, top), width, height, fill=False, edgecolor=color, lw=lw, ls=ls, zorder=5))


def _new_figure(width: float, height: float, top: float, dpi: int):
    """A figure whose one axes maps one data unit to one grid cell (rows grow downwards)."""
    fig = plt.figure(figsize=((width + 0.6) * CELL_INCHES, (height + top + 0.3) * CELL_INCHES), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    limits = {"xlim": (-0.3, width + 0.3), "ylim": (height + 0.3, -top)}

    def reset():
        ax.clear()
        ax.set(**limits)
        ax.set_aspect("equal")
        ax.axis("off")

    reset()
    return fig, ax, reset


def _text_cells(text: str, fontsize: float) -> float:
    """Roughly how many grid cells a line of text needs (DejaVu Sans: ~0.6 em a character)."""
    return max(len(line) for line in text.split("\n")) * 0.6 * fontsize / 72 / CELL_INCHES


def _check_frames(frames, max_frames: int, what: str) -> None:
    if len(frames) > max_frames:
        raise ValueError(f"this setting needs {len(frames)} frames (one per {what}), more than "
                         f"max_frames={max_frames}: use a smaller input or a larger stride")


def sliding_animation(input, kernel, stride=1, padding=0, *, interval=900, dpi=80, max_frames=40):
    """A convolution as a FuncAnimation: the kernel slides over the padded input, one frame per
    position, and writes one output cell each time. Returns (figure, animation)."""
    frames = conv2d_frames(input, kernel, stride, padding)
    _check_frames(frames, max_frames, "kernel position")
    return _draw_sliding(frames, input, kernel, stride, padding, interval, dpi)


def _draw_sliding(frames, input, kernel, stride, padding, interval, dpi):
    x, w = _grid(input, "input"), _grid(kernel, "kernel")
    padded, is_padding = pad_grid(x, padding)
    Hp, Wp = padded.shape
    H_out, W_out = frames[0].output.shape
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    p_text = f"{ph}" if ph == pw else f"({ph}, {pw})"
    s_text = f"{sh}" if sh == sw else f"({sh}, {sw})"

    title = f"convolution: kernel {_size(w.shape)}, stride {s_text}, padding {p_text}"
    input_title = f"input {_size(x.shape)}" + (f"\n(padding {p_text}: hatched zeros)" if ph or pw else "")
    gap = 3.2                                                  # room for the arrow between the grids
    out_left, out_top = Wp + gap, max(0.0, (Hp - H_out) / 2)
    width = max(out_left + max(W_out, 4), _text_cells(title, MIN_FONT), _text_cells(input_title, MIN_FONT))
    height = max(Hp, H_out) + 2.0
    fig, ax, reset = _new_figure(width, height, top=2.4, dpi=dpi)

    def draw(n):
        frame = frames[n]
        win, (r0, c0) = frame.window, frame.out_pos
        reset()
        ax.text(width / 2, -2.3, title, ha="center", va="top", fontsize=MIN_FONT, weight="bold")
        # the input, padded; the kernel's window in orange, its weights in the corner of each cell
        for r in range(Hp):
            for c in range(Wp):
                in_window = win.row <= r < win.row + win.height and win.col <= c < win.col + win.width
                face = KERNEL_LIGHT if in_window else (PAD_COLOR if is_padding[r, c] else INPUT_LIGHT)
                _cell(ax, r, c, face=face, hatch=HATCH if is_padding[r, c] else None, text=_num(padded[r, c]),
                      color="0.45" if is_padding[r, c] else "black")
                if in_window:
                    ax.text(c + 0.95, r + 0.95, f"×{_num(w[r - win.row, c - win.col])}", ha="right",
                            va="bottom", fontsize=MIN_FONT, color="#A04A10")
        _window_and_output(ax, win, Wp, input_title, frame.output, out_top, out_left, r0, c0)
        arrow_x = (win.col + win.width + out_left + c0) / 2
        ax.text(arrow_x, min(win.row + win.height / 2, out_top + r0 + 0.5) - 0.45, "Σ window × kernel",
                ha="center", va="bottom", fontsize=MIN_FONT, color=OUTPUT_COLOR)
        # what this frame computes
        note = f" ({frame.padded_taps} on padding)" if frame.padded_taps else ""
        ax.text(width / 2, max(Hp, H_out) + 0.45,
                f"output[{r0}, {c0}] = {frame.products.size} products summed = {_num(frame.value)}{note}",
                ha="center", va="top", fontsize=MIN_FONT)
        window_values = padded[win.rows, win.cols]
        terms = " + ".join(f"{_factor(a)}·{_factor(b)}" for a, b in zip(window_values.ravel(), w.ravel()))
        if _text_cells(f"= {terms}", MIN_FONT) <= width:
            ax.text(width / 2, max(Hp, H_out) + 1.25, f"= {terms}", ha="center", va="top", fontsize=MIN_FONT,
                    color="0.3")
        ax.text(width - 0.1, -1.45, f"frame {n + 1}/{len(frames)}", ha="right", va="top", fontsize=MIN_FONT, color="0.4")
        return []

    anim = FuncAnimation(fig, draw, frames=len(frames), interval=interval, blit=False, repeat=False)
    return fig, anim


def stamping_animation(input, kernel, stride=1, padding=0, output_padding=0, *, interval=900, dpi=80,
                       max_frames=40):
    """A transposed convolution as a FuncAnimation: each input pixel, one frame each, adds its value
    times the kernel into the full canvas; the cells that padding crops are hatched, those that
    output_padding adds are green, and the output is framed. Returns (figure, animation)."""
    frames = conv_transpose2d_frames(input, kernel, stride, padding, output_padding)
    _check_frames(frames, max_frames, "input pixel")
    return _draw_stamping(frames, input, kernel, stride, padding, output_padding, interval, dpi)


def _draw_stamping(frames, input, kernel, stride, padding, output_padding, interval, dpi):
    x, w = _grid(input, "input"), _grid(kernel, "kernel")
    (H, W), (kh, kw) = x.shape, w.shape
    last = frames[-1]
    crop, (Hc, Wc) = last.crop, last.canvas.shape
    extra = last.added_by_output_padding
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    oh, ow = _pair(output_padding, "output_padding", 0)

    def text(a, b):
        return f"{a}" if a == b else f"({a}, {b})"

    left_w = max(W, kw)
    kernel_top = H + 1.4
    canvas_left = left_w + 3.2
    canvas_top = 0.0
    body = max(kernel_top + kh, Hc)
    legend = [(PAD_COLOR, HATCH, f"cropped by padding {text(ph, pw)}")] if (ph or pw) else []
    if oh or ow:
        beyond = np.zeros_like(extra)
        beyond[last.reach[0]:, :] = beyond[:, last.reach[1]:] = True      # past the last stamp: zeros
        what = ("kept by" if not (extra & beyond).any() else "added by" if (extra <= beyond).all()
                else "kept or added by")
        legend.append((OUTPUT_LIGHT, None, f"{what} output_padding {text(oh, ow)}"
                       + (" (padding would crop it)" if what == "kept by" else
                          " (no stamp reaches: zeros)" if what == "added by" else "")))
    title = (f"transposed convolution: kernel {_size(w.shape)}, stride {text(sh, sw)}, padding {text(ph, pw)}, "
             f"output_padding {text(oh, ow)}")
    canvas_title = (f"output {crop.height}×{crop.width} (green frame)\non the full {Hc}×{Wc} canvas"
                    if (Hc, Wc) != (crop.height, crop.width) else f"output {crop.height}×{crop.width}")
    width = max(canvas_left + max(Wc, _text_cells(canvas_title, MIN_FONT)), _text_cells(title, MIN_FONT),
                *(1 + _text_cells(label, MIN_FONT) for _, _, label in legend),
                _text_cells(f"input[{H - 1}, {W - 1}] = {_num(x.min())}: add {_num(x.min())} × kernel into canvas "
                            f"{frames[-1].stamp.describe()}", 9))
    height = body + 0.5 + 0.8 * len(legend) + 1.7
    fig, ax, reset = _new_figure(width, height, top=2.4, dpi=dpi)

    def draw(n):
        frame = frames[n]
        (i0, j0), st = frame.in_pos, frame.stamp
        reset()
        ax.text(width / 2, -2.3, title, ha="center", va="top", fontsize=MIN_FONT, weight="bold")
        # the input: the pixel that stamps now in orange
        for r in range(H):
            for c in range(W):
                _cell(ax, r, c, face=KERNEL_LIGHT if (r, c) == (i0, j0) else INPUT_LIGHT, text=_num(x[r, c]))
        _outline(ax, i0, j0, 1, 1, KERNEL_COLOR)
        ax.text(W / 2, -0.25, f"input {_size(x.shape)}", ha="center", va="bottom", fontsize=MIN_FONT, color=INPUT_COLOR,
                weight="bold")
        # the kernel
        for r in range(kh):
            for c in range(kw):
                _cell(ax, kernel_top + r, c, face=KERNEL_LIGHT, text=_num(w[r, c]))
        ax.text(kw / 2, kernel_top - 0.2, f"kernel {_size(w.shape)}", ha="center", va="bottom", fontsize=MIN_FONT,
                color="#A04A10")
        # the full canvas: running sums; the output framed, cropped cells hatched, output_padding's in green
        for r in range(Hc):
            for c in range(Wc):
                kept = crop.row <= r < crop.row + crop.height and crop.col <= c < crop.col + crop.width
                stamped = st.row <= r < st.row + st.height and st.col <= c < st.col + st.width
                face = KERNEL_LIGHT if stamped else OUTPUT_LIGHT if extra[r, c] else "white" if kept else PAD_COLOR
                untouched = frame.coverage[r, c] == 0
                _cell(ax, canvas_top + r, canvas_left + c, face=face, hatch=None if kept else HATCH,
                      text=_num(frame.canvas[r, c]),
                      color="0.7" if untouched else "black" if kept else "0.4")
        _outline(ax, canvas_top + crop.row, canvas_left + crop.col, crop.height, crop.width, OUTPUT_COLOR, lw=2.2)
        _outline(ax, canvas_top + st.row, canvas_left + st.col, st.height, st.width, KERNEL_COLOR)
        ax.text(canvas_left + Wc / 2, canvas_top - 0.25, canvas_title, ha="center", va="bottom", fontsize=MIN_FONT,
                color=OUTPUT_COLOR, weight="bold")
        ax.annotate("", xy=(canvas_left + st.col - 0.05, canvas_top + st.row + min(st.height, 2) / 2),
                    xytext=(j0 + 1.05, i0 + 0.5),
                    arrowprops={"arrowstyle": "-|>", "color": KERNEL_COLOR, "lw": 1.4,
                                "connectionstyle": "arc3,rad=-0.2"},
                    zorder=2.5)   # above the cells, under their numbers
        # legend and what this frame does
        y = body + 0.5
        for face, hatch, label in legend:
            ax.add_patch(Rectangle((0, y), 0.6, 0.6, facecolor=face, hatch=hatch, edgecolor="0.35", lw=0.7,
                                   hatchcolor=HATCH_COLOR))
            ax.text(0.9, y + 0.3, label, ha="left", va="center", fontsize=MIN_FONT)
            y += 0.8
        ax.text(width / 2, y + 0.15,
                f"input[{i0}, {j0}] = {_num(frame.value)}: add {_num(frame.value)} × kernel "
                f"into canvas {st.describe()}", ha="center", va="top", fontsize=MIN_FONT)
        ax.text(width - 0.1, -1.45, f"frame {n + 1}/{len(frames)}", ha="right", va="top", fontsize=MIN_FONT, color="0.4")
        return []

    anim = FuncAnimation(fig, draw, frames=len(frames), interval=interval, blit=False, repeat=False)
    return fig, anim


def zero_insertion_animation(input, kernel, stride=1, padding=0, output_padding=0, *, interval=900, dpi=80,
                             max_frames=40):
    """A transposed convolution as zero insertion, as a FuncAnimation: the input spread out with zeros and
    padded (left), the 180°-rotated kernel sliding over it with stride 1, and the output filling up
    (right), one frame per output cell. Returns (figure, animation)."""
    zi, frames = zero_insertion_frames(input, kernel, stride, padding, output_padding)
    _check_frames(frames, max_frames, "output cell")
    return _draw_zero_insertion(zi, frames, input, kernel, stride, padding, output_padding, interval, dpi)


def _draw_zero_insertion(zi, frames, input, kernel, stride, padding, output_padding, interval, dpi):
    x, w = _grid(input, "input"), _grid(kernel, "kernel")
    Hp, Wp = zi.grid.shape
    H_out, W_out = frames[0].output.shape
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    oh, ow = _pair(output_padding, "output_padding", 0)
    eh, ew = zi.border

    def text(a, b):
        return f"{a}" if a == b else f"({a}, {b})"

    title = (f"transposed convolution as zero insertion: kernel {_size(w.shape)}, stride {text(sh, sw)},\n"
             f"padding {text(ph, pw)}, output_padding {text(oh, ow)}: slide the kernel rotated 180°")
    input_title = f"input {_size(x.shape)}, spread and padded: {Hp}×{Wp}"
    legend = [(INPUT_LIGHT, None, f"input pixel ({_size(x.shape)})")]
    if sh > 1 or sw > 1:
        legend.append(("white", None, f"{text(sh - 1, sw - 1)} zero{'s' if max(sh, sw) > 2 else ''} inserted "
                                      f"between pixels (stride {text(sh, sw)} − 1)"))
    if eh or ew:
        legend.append((PAD_COLOR, HATCH, f"padding: k − 1 − p = {text(eh, ew)} zeros on each side"))
    if oh or ow:
        legend.append((PAD_COLOR, HATCH_END, f"output_padding {text(oh, ow)}: more zeros at the end"))
    legend.append((None, None, "the window (orange); ×n: the rotated kernel's weight on that cell"))
    gap = 2.8                                                  # room for the arrow between the grids
    out_left, out_top = Wp + gap, max(0.0, (Hp - H_out) / 2)
    width = max(out_left + max(W_out, 4), _text_cells(title, MIN_FONT), _text_cells(input_title, MIN_FONT),
                *(1 + _text_cells(label, MIN_FONT) for _, _, label in legend))
    body = max(Hp, H_out)
    height = body + 0.5 + 0.8 * len(legend) + 1.0
    fig, ax, reset = _new_figure(width, height, top=3.0, dpi=dpi)
    faces = {INPUT_PIXEL: INPUT_LIGHT, INSERTED_ZERO: "white", PADDING_ZERO: PAD_COLOR, OUTPUT_PADDING_ZERO: PAD_COLOR}
    hatches = {PADDING_ZERO: HATCH, OUTPUT_PADDING_ZERO: HATCH_END}

    def draw(n):
        frame = frames[n]
        win, (r0, c0) = frame.window, frame.out_pos
        reset()
        ax.text(width / 2, -2.9, title, ha="center", va="top", fontsize=MIN_FONT, weight="bold")
        for r in range(Hp):
            for c in range(Wp):
                k = zi.kind[r, c]
                in_window = win.row <= r < win.row + win.height and win.col <= c < win.col + win.width
                _cell(ax, r, c, face=faces[k], hatch=hatches.get(k),
                      text=_num(zi.grid[r, c]), color="black" if k == INPUT_PIXEL else "0.45")
                if in_window:
                    ax.text(c + 0.97, r + 0.97, f"×{_num(zi.kernel[r - win.row, c - win.col])}", ha="right",
                            va="bottom", fontsize=MIN_FONT, color="#A04A10")
        _window_and_output(ax, win, Wp, input_title, frame.output, out_top, out_left, r0, c0)
        y = body + 0.5
        for face, hatch, label in legend:
            if face is None:                                   # the window's frame
                _outline(ax, y, 0, 0.6, 0.6, KERNEL_COLOR, lw=2.2)
            else:
                ax.add_patch(Rectangle((0, y), 0.6, 0.6, facecolor=face, hatch=hatch, edgecolor="0.35", lw=0.7,
                                       hatchcolor=HATCH_COLOR))
            ax.text(0.9, y + 0.3, label, ha="left", va="center", fontsize=MIN_FONT)
            y += 0.8
        zeros = frame.padded_taps
        ax.text(width / 2, y + 0.15,
                f"output[{r0}, {c0}] = {frame.products.size} products summed = {_num(frame.value)} "
                f"({zeros} of them multiply a zero)", ha="center", va="top", fontsize=MIN_FONT)
        ax.text(width - 0.1, -0.95 - 0.8, f"frame {n + 1}/{len(frames)}", ha="right", va="top", fontsize=MIN_FONT,
                color="0.4")
        return []

    anim = FuncAnimation(fig, draw, frames=len(frames), interval=interval, blit=False, repeat=False)
    return fig, anim


# --------------------------------------------------------------------------
# the offline player

_CDN_LINK = re.compile(r'<link rel="stylesheet"\s+href="https?://[^"]*font-awesome[^"]*">\s*')


def _player_html(fig, anim, label: str, caption: str) -> str:
    """Render ``anim`` to matplotlib's JS-HTML player, close its figure, and wrap it with a caption.

    The player's Font Awesome stylesheet comes from a CDN; the book's theme ships Font Awesome
    itself, so the link is dropped and the page makes no network request. (In a plain notebook,
    which has no Font Awesome, the buttons then lose their icons: display ``anim.to_jshtml()``
    from ``sliding_animation`` / ``stamping_animation`` there instead.)
    """
    try:
        with plt.rc_context({"savefig.dpi": "figure"}):   # the frames at the figure's own dpi, whatever the book's
            player = anim.to_jshtml(default_mode="once")
    finally:
        plt.close(fig)
    player = _CDN_LINK.sub("", player)
    player = player.replace('<img id="_anim_img', f'<img alt="{html.escape(label)}" id="_anim_img', 1)
    return (f'<figure class="course-animation" aria-label="{html.escape(label)}">\n{player}\n'
            f'<figcaption style="font-size: 0.9em">{html.escape(caption)}</figcaption>\n</figure>')


def sliding_html(input, kernel, stride=1, padding=0, *, interval=900, dpi=80, max_frames=40) -> str:
    """``sliding_animation`` as an offline JS-HTML player: display it with ``IPython.display.HTML``."""
    frames = conv2d_frames(input, kernel, stride, padding)
    _check_frames(frames, max_frames, "kernel position")
    fig, anim = _draw_sliding(frames, input, kernel, stride, padding, interval, dpi)
    x_size, out_size = _size(_grid(input, "input").shape), _size(frames[0].output.shape)
    label = f"Convolution animation: input {x_size} (left) and output {out_size} (right)"
    caption = (f"Left: input {x_size}" + (f", with padding {padding} hatched" if _pair(padding, "padding", 0) != (0, 0)
                                          else "")
               + f"; right: output {out_size}. {len(frames)} frames, one per kernel position: "
               "press ▶ or drag the slider.")
    return _player_html(fig, anim, label, caption)


def stamping_html(input, kernel, stride=1, padding=0, output_padding=0, *, interval=900, dpi=80,
                  max_frames=40) -> str:
    """``stamping_animation`` as an offline JS-HTML player: display it with ``IPython.display.HTML``."""
    frames = conv_transpose2d_frames(input, kernel, stride, padding, output_padding)
    _check_frames(frames, max_frames, "input pixel")
    fig, anim = _draw_stamping(frames, input, kernel, stride, padding, output_padding, interval, dpi)
    x_size, out_size = _size(_grid(input, "input").shape), _size(frames[-1].output.shape)
    canvas_size = _size(frames[-1].canvas.shape)
    label = (f"Transposed convolution animation: input {x_size} (left) and output {out_size} "
             f"(right, framed on the full {canvas_size} canvas)")
    caption = (f"Left: input {x_size}; right: output {out_size}, framed on the full {canvas_size} canvas"
               + (f", with the cells that padding {padding} crops hatched" if _pair(padding, "padding", 0) != (0, 0)
                  else "")
               + f". {len(frames)} frames, one per input pixel: press ▶ or drag the slider.")
    return _player_html(fig, anim, label, caption)


def zero_insertion_html(input, kernel, stride=1, padding=0, output_padding=0, *, interval=900, dpi=80,
                        max_frames=40) -> str:
    """``zero_insertion_animation`` as an offline JS-HTML player: display it with ``IPython.display.HTML``."""
    zi, frames = zero_insertion_frames(input, kernel, stride, padding, output_padding)
    _check_frames(frames, max_frames, "output cell")
    fig, anim = _draw_zero_insertion(zi, frames, input, kernel, stride, padding, output_padding, interval, dpi)
    x_size, out_size, grid_size = _size(_grid(input, "input").shape), _size(frames[0].output.shape), _size(zi.grid.shape)
    label = (f"Transposed convolution as zero insertion, animated: input {x_size} spread and padded to {grid_size} "
             f"(left), output {out_size} (right)")
    caption = (f"Left: input {x_size} with zeros inserted and padded to {grid_size}; the orange window is the "
               f"kernel rotated 180°. Right: output {out_size}. {len(frames)} frames, one per output cell: "
               "press ▶ or drag the slider.")
    return _player_html(fig, anim, label, caption)
