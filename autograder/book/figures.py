"""Plotting helpers shared by the book's chapters (one place, no copy-paste).

Every function draws from numbers it is given or computes with torch at build
time; none contains an exercise's solution.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle

INPUT_COLOR = "#4C72B0"
KERNEL_COLOR = "#DD8452"
OUTPUT_COLOR = "#55A868"
PAD_COLOR = "#DDDDDD"
# Light shades of the three, for cells that carry numbers.
INPUT_LIGHT = "#C9D7EE"
KERNEL_LIGHT = "#FBE3D0"
OUTPUT_LIGHT = "#CDE8D2"


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
    fig, ax = plt.subplots(figsize=(8, 3.2))
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
            ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=6)
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
    """Images side by side in one row with their titles: 3-channel ones as RGB, 2-D ones with a colour map."""
    fig, axes = plt.subplots(1, len(images), figsize=(size * len(images), size + 0.3))
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
    """Store ``fig`` as a PNG for a ``{glue:figure}`` directive, and close it.

    Rendering the PNG here (rather than gluing the Figure object) works under
    any matplotlib backend, and closing it keeps a second copy out of the page.
    """
    import io

    from IPython.display import Image
    from myst_nb import glue

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
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
    fig, axes = plt.subplots(1, len(grids), figsize=(cell * sum(widths) + 0.8 * len(grids),
                                                      cell * max(g.shape[-2] for g in grids) + 0.8),
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
