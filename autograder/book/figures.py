"""Plotting helpers shared by the book's chapters (one place, no copy-paste).

Every function draws from numbers it is given or computes with torch at build
time; none contains an exercise's solution.

Legibility is a property of the build, checked here: the book's article column is
:data:`COLUMN_PX` CSS px wide in a 1280 px window (measured in Chromium on the built
book), every figure is saved at :data:`DPI`, and a figure whose smallest text would
be shown below :data:`MIN_TEXT_PX` CSS px is refused (:class:`IllegibleFigure`), by
:func:`glue_figure` and, for a figure a page displays inline, by the display hook
that importing this module installs in the page's kernel (:func:`install`). The
colour cycle is Okabe and Ito's palette, which stays distinct for colour-blind readers.

To survey every figure of the book instead of stopping at the first refused one, build with
``COURSE_FIGURE_SURVEY=/path/figures.jsonl``: each figure's smallest text and scale is appended
there as a JSON line and nothing is refused (never set it for a real build).
"""

from __future__ import annotations

import json
import os

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from cycler import cycler
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

#: Width of the article column, in CSS px, of the built book (sphinx-book-theme) in a 1280 px wide
#: window; measured in Chromium (tests/test_browser.py checks it still holds).
COLUMN_PX = 688
#: The smallest text a figure may show, in CSS px as displayed (about the height of 7 pt print).
MIN_TEXT_PX = 9
#: Every figure of the book is saved at this resolution; matplotlib writes it into the PNG (pHYs),
#: where the browser test reads it back.
DPI = 110
#: Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision deficiency.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]

INPUT_COLOR = "#0072B2"    # Okabe-Ito blue
KERNEL_COLOR = "#E69F00"   # Okabe-Ito orange
OUTPUT_COLOR = "#009E73"   # Okabe-Ito bluish green
PAD_COLOR = "#DDDDDD"
# Light shades of the three, for cells that carry numbers (black text stays readable on them).
INPUT_LIGHT = "#BFDCEC"
KERNEL_LIGHT = "#F9E7BF"
OUTPUT_LIGHT = "#BFE7DC"

matplotlib.rcParams.update({"figure.dpi": DPI, "savefig.dpi": DPI,
                            "axes.prop_cycle": cycler(color=OKABE_ITO)})


class IllegibleFigure(ValueError):
    """A figure whose smallest text would be shown below MIN_TEXT_PX in the book's column."""


def column_inches(dpi: float = DPI) -> float:
    """The widest figure, in inches, that the column shows at full size (wider ones are scaled down)."""
    return COLUMN_PX / dpi


def displayed_scale(width_in: float, dpi: float = DPI) -> float:
    """CSS px per typographic point of a figure ``width_in`` inches wide saved at ``dpi``, as the
    column shows it: at its natural size (dpi/72 px per point) unless wider than the column."""
    return min(1.0, COLUMN_PX / (width_in * dpi)) * dpi / 72


def column_figure_inches(dpi: float = DPI) -> float:
    """The widest figure to draw, in inches: the column at full size, less savefig's tight padding."""
    return column_inches(dpi) - 2 * matplotlib.rcParams["savefig.pad_inches"]


def fit_to_column(width: float, height: float) -> tuple[float, float]:
    """A figure size (inches) no wider than the column shows at full size, keeping the aspect ratio."""
    limit = column_figure_inches()
    return (width, height) if width <= limit else (limit, height * limit / width)


def wrap_title(title: str, width_in: float, fontsize: float = 9) -> str:
    """``title`` broken into lines that fit ``width_in`` inches at ``fontsize`` points (about 0.65 em a character, to spare)."""
    import textwrap

    chars = max(8, int(width_in * 72 / (0.65 * fontsize)))
    return "\n".join(textwrap.fill(line, chars) for line in title.split("\n"))


def drawn_texts(fig: Figure) -> tuple[list[tuple[str, float]], float]:
    """Every text the figure draws, as (text, size in points), and the width in inches of what
    ``savefig(bbox_inches="tight")`` writes (the figure's tight box plus its 0.1 in padding).

    The figure is drawn once with a recording renderer, so only what is really drawn counts
    (not the tick labels of a hidden axis)."""
    canvas = fig.canvas
    if not hasattr(canvas, "get_renderer"):  # e.g. a figure attached to a non-Agg backend
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        canvas = FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    seen: list[tuple[str, float]] = []
    draw_text = renderer.draw_text

    def recording(gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if str(s).strip():
            seen.append((str(s), float(prop.get_size_in_points())))
        return draw_text(gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)

    renderer.draw_text = recording
    try:
        fig.draw(renderer)
    finally:
        del renderer.draw_text
    width_in = fig.get_tightbbox(renderer).width + 2 * matplotlib.rcParams["savefig.pad_inches"]
    return seen, width_in


def smallest_text(fig: Figure, dpi: float = DPI, tight: bool = True) -> tuple[float, float, str]:
    """(smallest text in CSS px as displayed, CSS px per point, that text) for ``fig`` saved at
    ``dpi`` and shown in the book's column; (inf, scale, "") for a figure without text."""
    texts, tight_in = drawn_texts(fig)
    width_in = tight_in if tight else fig.get_figwidth()
    scale = displayed_scale(width_in, dpi)
    if not texts:
        return float("inf"), scale, ""
    s, pt = min(texts, key=lambda t: t[1])
    return pt * scale, scale, s


def _survey(px: float, scale: float, text: str, fig: Figure) -> bool:
    """With COURSE_FIGURE_SURVEY=FILE set (a survey of the whole book, see the module's docstring),
    append this figure's measure to FILE as a JSON line and return True: measure, do not refuse."""
    path = os.environ.get("COURSE_FIGURE_SURVEY")
    if not path:
        return False
    title = fig._suptitle.get_text() if fig._suptitle is not None else " | ".join(
        a.get_title() for a in fig.axes if a.get_title())
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"pid": os.getpid(), "title": title[:80],
                            "px": round(px, 2), "scale": round(scale, 3), "text": text[:40]}) + "\n")
    return True


def check_legible(fig: Figure, dpi: float = DPI, tight: bool = True) -> float:
    """Refuse a figure whose smallest text would show below MIN_TEXT_PX in the column; return its size in px."""
    px, scale, text = smallest_text(fig, dpi, tight)
    if _survey(px, scale, text, fig):
        return px
    if px < MIN_TEXT_PX - 1e-6:
        texts, tight_in = drawn_texts(fig)
        width_in = tight_in if tight else fig.get_figwidth()
        need = MIN_TEXT_PX / scale
        raise IllegibleFigure(
            f"figure text {text[:40]!r} would be shown {px:.1f} px high (limit {MIN_TEXT_PX} px): the figure is "
            f"{width_in:.2f} in wide at {dpi:g} dpi, shown at {scale:.2f} px per point in the book's "
            f"{COLUMN_PX} px column (full size up to {column_inches(dpi):.2f} in); use fontsize >= {need:.1f} pt "
            f"or a narrower figure")
    return px


def install(shell=None) -> bool:
    """Make every figure a page displays inline pass :func:`check_legible` (glue_figure checks its own).

    Wraps the kernel's display formatters for matplotlib figures; a refused figure also marks its
    cell as failed (post_run_cell), so the book's build (warnings as errors) stops there. Runs once
    per kernel, on importing this module; returns whether an IPython shell was found."""
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:  # pragma: no cover - IPython is a dependency of the book
            return False
        shell = get_ipython()
    if shell is None or getattr(shell, "_course_figures_checked", False):
        return shell is not None
    # Load the plotting backend first: the inline backend (re)registers its formatters when it loads.
    try:
        plt.switch_backend(matplotlib.get_backend())
    except Exception:  # pragma: no cover - a backend that cannot load here is not ours to check
        pass
    refused: list[BaseException] = []

    def guarded(original):
        def format_checked(fig, *args, **kwargs):
            try:  # the inline backend saves at fig.dpi (a retina PNG is shown at half its size: the same scale)
                check_legible(fig, dpi=fig.dpi)
            except IllegibleFigure as err:
                refused.append(err)
                raise
            return original(fig, *args, **kwargs)
        return format_checked

    for formatter in shell.display_formatter.formatters.values():
        try:
            original = formatter.lookup_by_type(Figure)
        except KeyError:
            continue
        formatter.for_type(Figure, guarded(original))

    def fail_the_cell(result):
        if refused:
            err = refused[0]
            refused.clear()
            if result is not None and result.error_in_exec is None:
                result.error_in_exec = err

    shell.events.register("post_run_cell", fail_the_cell)
    shell._course_figures_checked = True
    return True


def draw_grid(ax, rows: int, cols: int, *, values=None, fill=None, origin=(0, 0), title=None,
              edge="0.3", fontsize=8):
    """A grid of unit cells with optional numbers (``values``) and colours (``fill``)."""
    oy, ox = origin
    for r in range(rows):
        for c in range(cols):
            face = fill[r][c] if fill is not None else "white"
            ax.add_patch(Rectangle((ox + c, oy + r), 1, 1, facecolor=face, edgecolor=edge, lw=0.8))
            if values is not None:
                v = values[r][c]
                text = f"{v:g}" if isinstance(v, (int, float, np.floating, np.integer)) else str(v)
                ax.text(ox + c + 0.5, oy + r + 0.5, text, ha="center", va="center", fontsize=fontsize)
    if title:
        ax.text(ox + cols / 2, oy - 0.4, title, ha="center", va="bottom", fontsize=9)


def _tidy(ax, rows, cols, pad=0.6):
    ax.set_xlim(-pad, cols + pad)
    ax.set_ylim(rows + pad, -pad - 1.2)
    ax.set_aspect("equal")
    ax.axis("off")


def conv_sliding_figure(size: int = 7, kernel: int = 3, stride: int = 1, padding: int = 0,
                        positions: int = 3):
    """Small multiples: the kernel over the (padded) input, and the output pixel it writes.

    Input cells are blue, zero padding grey, the kernel's footprint orange, and
    the output pixel being written green. Sizes come from ``torch.nn.Conv2d``.
    """
    out_size = torch.nn.Conv2d(1, 1, kernel, stride, padding)(torch.zeros(1, 1, size, size)).shape[-1]
    total = size + 2 * padding
    spots = [(0, j) for j in range(0, out_size)][:positions - 1] + [(out_size - 1, out_size - 1)]
    fig, axes = plt.subplots(1, len(spots), figsize=(3.1 * len(spots), 2.9))
    for ax, (oy, ox) in zip(np.atleast_1d(axes), spots):
        fill = [[PAD_COLOR if (r < padding or r >= padding + size or c < padding or c >= padding + size)
                 else INPUT_LIGHT for c in range(total)] for r in range(total)]
        for a in range(kernel):
            for b in range(kernel):
                fill[oy * stride + a][ox * stride + b] = KERNEL_COLOR
        draw_grid(ax, total, total, fill=fill, title=f"input {size}x{size}" + (f" + padding {padding}" if padding else ""))
        gap = total + 1.5
        ofill = [["white"] * out_size for _ in range(out_size)]
        ofill[oy][ox] = OUTPUT_COLOR
        draw_grid(ax, out_size, out_size, fill=ofill, origin=((total - out_size) / 2, gap), title=f"output {out_size}x{out_size}")
        ax.annotate("", xy=(gap - 0.1, (total) / 2), xytext=(total + 0.2, total / 2),
                    arrowprops=dict(arrowstyle="->", color="0.3"))
        _tidy(ax, total, gap + out_size)
    fig.suptitle(f"kernel {kernel}x{kernel}, stride {stride}, padding {padding}: "
                 f"{size}x{size} → {out_size}x{out_size}", fontsize=10)
    fig.tight_layout()
    return fig


def feature_map_sizes(layers: torch.nn.Sequential, size: int):
    """Run zeros through ``layers`` and record (name, channels, height, width) after each."""
    x = torch.zeros(1, layers[0].in_channels if hasattr(layers[0], "in_channels") else 1, size, size)
    rows = [("input", x.shape[1], x.shape[2], x.shape[3])]
    with torch.no_grad():
        for layer in layers:
            x = layer(x)
            rows.append((describe_layer(layer), x.shape[1], x.shape[2], x.shape[3]))
    return rows


def describe_layer(layer) -> str:
    """A short label for a layer (its type, and kernel, stride and padding where it has them)."""
    name = type(layer).__name__
    if isinstance(layer, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
        k, s, p = layer.kernel_size[0], layer.stride[0], layer.padding[0]
        return f"{name} k{k} s{s} p{p}"
    if isinstance(layer, (torch.nn.MaxPool2d, torch.nn.AvgPool2d)):
        return f"{name} k{layer.kernel_size} s{layer.stride}"
    if isinstance(layer, torch.nn.Upsample):
        return f"Upsample x{layer.scale_factor:g}"
    return name


def sizes_figure(rows, title: str):
    """Feature-map height through a network, as bars labelled with the shape."""
    fig, ax = plt.subplots(figsize=(column_figure_inches(), 3.2))
    names = [r[0] for r in rows]
    heights = [r[2] for r in rows]
    bars = ax.bar(range(len(rows)), heights, color=[INPUT_COLOR] + [OUTPUT_COLOR] * (len(rows) - 1))
    for bar, (_, c, h, w) in zip(bars, rows):
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"{c}×{h}×{w}",
                ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(rows)), names, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("height = width (pixels)")
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def padding_share_map(size: int, kernel: int, padding: int) -> torch.Tensor:
    """For each output pixel, the fraction of its kernel taps that land on zero padding.

    Computed with torch: convolve an image of ones (the real pixels) with a
    kernel of ones; the taps that found zeros are the padded ones.
    """
    ones = torch.ones(1, 1, size, size)
    taps = torch.nn.functional.conv2d(ones, torch.ones(1, 1, kernel, kernel), padding=padding)
    return 1 - taps[0, 0] / kernel ** 2


def heatmap_figure(values: torch.Tensor, title: str, fmt: str = "{:.2f}", cmap="Oranges"):
    """A 2-D tensor as a heat map, each value written in its cell when there are at most 100."""
    fig, ax = plt.subplots(figsize=(3.6, 3.4))
    ax.imshow(values.numpy(), cmap=cmap, vmin=0, vmax=max(float(values.max()), 1e-9))
    if values.numel() <= 100:
        for (r, c), v in np.ndenumerate(values.numpy()):
            ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=6.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def synthetic_scene(size: int = 64, seed: int = 0):
    """A toy image and its segmentation mask: a disc and a square on a textured background."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disc = ((yy - 0.35 * size) ** 2 + (xx - 0.32 * size) ** 2) < (0.2 * size) ** 2
    square = (yy > 0.5 * size) & (yy < 0.85 * size) & (xx > 0.55 * size) & (xx < 0.9 * size)
    mask = torch.zeros(size, size, dtype=torch.long)
    mask[disc] = 1
    mask[square] = 2
    image = torch.stack([0.25 + 0.1 * torch.rand(size, size, generator=g)] * 3)
    image[0][disc], image[1][disc], image[2][disc] = 0.9, 0.4, 0.3
    image[0][square], image[1][square], image[2][square] = 0.3, 0.5, 0.9
    return image, mask


def images_row(images, titles, cmaps=None, size=2.6):
    """Images side by side in one row with their titles: 3-channel ones as RGB, 2-D ones with a colour map.

    Each image is ``size`` inches wide, or less where the row would not fit the column at full size."""
    size = min(size, column_figure_inches() / len(images) - 0.05)
    titles = [wrap_title(t, size) for t in titles]
    lines = max(t.count("\n") + 1 for t in titles)
    fig, axes = plt.subplots(1, len(images), figsize=(size * len(images), size + 0.2 + 0.17 * lines))
    for i, (ax, img, title) in enumerate(zip(np.atleast_1d(axes), images, titles)):
        arr = img.detach().cpu()
        if arr.dim() == 3:
            ax.imshow(arr.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
        else:
            ax.imshow(arr.numpy(), cmap=(cmaps[i] if cmaps else "viridis"), interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig


def glue_figure(name: str, fig) -> None:
    """Store ``fig`` as a PNG for a ``{glue:figure}`` directive, and close it; refuse (raise
    :class:`IllegibleFigure`) a figure whose text the book's column would show too small.

    Rendering the PNG here (rather than gluing the Figure object) works under
    any matplotlib backend, and closing it keeps a second copy out of the page.
    """
    import io

    from IPython.display import Image
    from myst_nb import glue

    check_legible(fig, DPI)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    glue(name, Image(data=buf.getvalue(), format="png"), display=False)


def colour_image(size: int = 4, seed: int = 0) -> torch.Tensor:
    """A small RGB test image (3, size, size): distinct, saturated colours, so every pixel is traceable."""
    g = torch.Generator().manual_seed(seed)
    hues = torch.randperm(size * size, generator=g).float() / (size * size)
    h6 = hues * 6
    i = h6.floor()
    f = h6 - i
    v, s = torch.ones_like(hues), 0.75 * torch.ones_like(hues)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    rgb = torch.zeros(3, size * size)
    for k, (r, gg, b) in enumerate(choices):
        m = i.long() % 6 == k
        rgb[0][m], rgb[1][m], rgb[2][m] = r[m], gg[m], b[m]
    return rgb.reshape(3, size, size)


def value_grids_figure(grids, titles, fmt: str = "{:g}", cmap="viridis", cell: float = 0.42):
    """Numeric grids side by side, each cell coloured by value and labelled with it (before/after views)."""
    widths = [max(g.shape[-1], 2) for g in grids]
    # Cells shrink (never the numbers' type) until the row fits the column at full size.
    cell = min(cell, (column_figure_inches() - 0.8 * len(grids)) / sum(widths))
    titles = [wrap_title(t, cell * w + 0.6) for t, w in zip(titles, widths)]
    lines = max(t.count("\n") + 1 for t in titles)
    fig, axes = plt.subplots(1, len(grids), figsize=(cell * sum(widths) + 0.8 * len(grids),
                                                      cell * max(g.shape[-2] for g in grids) + 0.65 + 0.15 * lines),
                             gridspec_kw={"width_ratios": widths})
    lo = min(float(g.min()) for g in grids)
    hi = max(float(g.max()) for g in grids)
    for ax, grid, title in zip(np.atleast_1d(axes), grids, titles):
        arr = grid.detach().cpu().double().numpy()
        ax.imshow(arr, cmap=cmap, vmin=lo, vmax=hi if hi > lo else lo + 1)
        for (r, c), v in np.ndenumerate(arr):
            shade = (v - lo) / (hi - lo) if hi > lo else 0
            ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=7,
                    color="black" if shade > 0.55 else "white")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def labels_grid_figure(labels, title: str, fill=None, cell: float = 0.55, fontsize: int = 7):
    """A grid of text labels (e.g. the source index of every output pixel), optionally coloured."""
    rows, cols = len(labels), len(labels[0])
    cell = min(cell, (column_figure_inches() - 0.6) / cols)
    fig, ax = plt.subplots(figsize=(cell * cols + 0.6, cell * rows + 0.9))
    draw_grid(ax, rows, cols, values=labels, fill=fill, fontsize=fontsize)
    ax.set_xlim(-0.2, cols + 0.2)
    ax.set_ylim(rows + 0.2, -0.2)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def markdown_table(header, rows) -> str:
    """A Markdown table (displayed with IPython.display.Markdown; the book renders it)."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


install()
