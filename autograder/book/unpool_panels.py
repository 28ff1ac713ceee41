"""Helpers that Chapter 5's pages share: flat indices as (row, col), and grids of labels side by side.

Introduced in: book/05_max_unpooling.md (``rc``, ``index_panels``, ``WIN``, ``ZERO``); also used by the
deep dives in book/05_max_unpooling/. Each page is a notebook of its own, so what they share lives in a
module.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from autograder.book import figures


def rc(index, width):
    """Flat position in a plane of the given width -> (row, col), as text."""
    return f"({int(index) // width},{int(index) % width})"


def index_panels(panels, title=None, cell=0.5, fontsize=8):
    """Label grids side by side: each panel is (labels, fill, panel title)."""
    widths = [len(labels[0]) for labels, _, _ in panels]
    height = max(len(labels) for labels, _, _ in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(min(cell * sum(widths) + 0.35 * len(panels), figures.column_figure_inches()), cell * height + 0.8),
                             gridspec_kw={"width_ratios": widths})
    for ax, (labels, fill, name) in zip(axes, panels):
        rows, cols = len(labels), len(labels[0])
        figures.draw_grid(ax, rows, cols, values=labels, fill=fill, fontsize=fontsize)
        ax.set_xlim(-0.2, cols + 0.2)
        ax.set_ylim(height + 0.2, -0.2)
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


WIN = "#F2B880"   # a window's maximum (a "switch" position)
ZERO = "#EEEEEE"  # a zero written by unpooling
