"""Helpers that Chapter 2's pages share: asking torch which input pixel each output pixel copies,
and drawing the answer.

Introduced in: book/02_nearest_neighbour.md (``nearest_sources``, ``index_map_figure``); also used by
book/02_nearest_neighbour/factor_or_size.md. Each page is a notebook of its own, so what they share lives
in a module.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from autograder.book import figures

PALETTE = plt.get_cmap("Pastel1").colors


def nearest_sources(n_in, mode="nearest", **kwargs):
    """Ask torch which input index each output index copies: interpolate the ramp 0, 1, ..., n_in-1.

    The ramp lies along the width of a 4-D (1, 1, 1, n_in) tensor; the height (1) keeps its size.
    """
    ramp = torch.arange(n_in, dtype=torch.float32).view(1, 1, 1, n_in)
    if "scale_factor" in kwargs:
        kwargs["scale_factor"] = (1, kwargs["scale_factor"])
    if "size" in kwargs:
        kwargs["size"] = (1, kwargs["size"])
    out = F.interpolate(ramp, mode=mode, **kwargs)[0, 0, 0]
    return [int(v) for v in out]


def index_map_figure(panels, cell=0.55):
    """One panel per (n_in, sources, title): input cells on top, output cells below, a line from each
    output cell to the input cell it copies. Input cells that no output reads are hatched."""
    width = max(max(n_in, len(src)) for n_in, src, _ in panels)
    fig, axes = plt.subplots(len(panels), 1, figsize=(min(cell * width + 1.6, figures.column_figure_inches()), 1.75 * len(panels)), squeeze=False)
    for ax, (n_in, src, title) in zip(axes[:, 0], panels):
        colour = [PALETTE[i % len(PALETTE)] for i in range(n_in)]
        used = set(src)
        figures.draw_grid(ax, 1, n_in, values=[list(range(n_in))], fill=[colour], origin=(0, 0))
        for i in set(range(n_in)) - used:  # never read: hatch it
            ax.add_patch(plt.Rectangle((i, 0), 1, 1, fill=False, hatch="///", edgecolor="0.45", lw=0))
        figures.draw_grid(ax, 1, len(src), values=[src], fill=[[colour[s] for s in src]], origin=(2.4, 0))
        for j, s in enumerate(src):
            ax.plot([j + 0.5, s + 0.5], [2.4, 1.0], color="0.45", lw=0.8)
        ax.text(-0.3, 0.5, "input", ha="right", va="center", fontsize=8)
        ax.text(-0.3, 2.9, "output", ha="right", va="center", fontsize=8)
        ax.set_title(title, fontsize=9, loc="left")
        ax.set_xlim(-1.6, width + 0.2)
        ax.set_ylim(3.6, -0.3)
        ax.set_aspect("equal")
        ax.axis("off")
    fig.tight_layout()
    return fig
