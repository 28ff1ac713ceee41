"""Grid figures of Chapter 6 and its sections: the colours and helpers its pages share (defined once, here).

Used by ``book/06_transposed_convolution.md`` and the pages under ``book/06_transposed_convolution/``:
each page is a notebook of its own, so what they share lives in a module. Grids are drawn with
:func:`autograder.book.figures.draw_grid`; :func:`legible` raises every text of a finished figure to
:data:`MIN_FONT` points, so that a figure drawn no wider than :data:`MAX_WIDTH` inches shows its
smallest text at 9 px or more in the book's column.
"""

from __future__ import annotations

from matplotlib.text import Text

STAMP_COLOURS = ["#C9D7EE", "#F6D3B8", "#CDE8D2", "#E5D0EC"]   # one light colour per input pixel
COVER_COLOURS = {0: "white", 1: "#EEF3FA", 2: "#C9D7EE", 3: "#A9C2E6", 4: "#8FB3E0"}   # stamps covering a pixel
MIN_FONT = 10       # points
MAX_WIDTH = 10.0    # inches: about the book's column (730 CSS px) at 73 px an inch


def labels_of(t, fmt="{:g}", where=None):
    """Text labels of a 2-D tensor ('' where `where` is False); -0 prints as 0."""
    return [[fmt.format(float(v) + 0.0) if where is None or where[r][c] else ""
             for c, v in enumerate(row)] for r, row in enumerate(t)]


def finish(ax, height, width, top=1.5, left=0.3):
    """Fit the axes around grids drawn with figures.draw_grid (rows grow downwards)."""
    ax.set_xlim(-left, width + 0.3)
    ax.set_ylim(height + 0.3, -top)
    ax.set_aspect("equal")
    ax.axis("off")


def legible(fig, min_pt: float = MIN_FONT, tight: bool = True):
    """Raise every text of ``fig`` (titles, tick labels, cell labels) to at least ``min_pt`` points,
    re-fit the layout, and refuse a figure wider than :data:`MAX_WIDTH` inches. Returns ``fig``."""
    for text in fig.findobj(Text):
        if text.get_text() and text.get_fontsize() < min_pt:
            text.set_fontsize(min_pt)
    if tight:
        fig.tight_layout()
    width = fig.get_size_inches()[0]
    if width > MAX_WIDTH:
        raise ValueError(f"a figure {width:.1f} inches wide is shown shrunk in the book's column: "
                         f"draw it at most {MAX_WIDTH:g} inches wide")
    return fig
