"""The paper's canvas arithmetic and the oval's fit around one glyph (pure functions, no fonts).

The "VLMs are blind" generator lays a word out in units where the text is 96 px high, on a canvas
200 units tall and `text width + 2 x padding` wide, draws it with matplotlib on a 10 x 2 inch
figure at 1200 dpi and shrinks the result into the final image. vlmkit keeps those units (so
padding and thickness mean what they mean in the paper) but renders straight at the final size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vlmkit.synth.glyphs import Box

REFERENCE_PX = 96.0
"""Text size of the layout units: one unit is one pixel of a 96 px font."""
CANVAS_HEIGHT = 200.0
"""Height of the paper's canvas in layout units; the text is centred on it."""
PAPER_FIGURE_INCHES = (10.0, 2.0)
PAPER_DPI = 1200.0
POINTS_PER_INCH = 72.0
CENTRE_MARGIN_PX = 0.5
"""How far outside the oval's box another glyph's centre must stay, in final pixels."""


class LayoutError(ValueError):
    """The word cannot be drawn with these parameters; `fix` says which flag would help."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


class CrowdedLetter(LayoutError):
    """No oval can hold this glyph without another glyph's centre: its ink reaches under a
    neighbour (an italic f or y). A property of the letter in context, not of the flags."""


@dataclass(frozen=True)
class Oval:
    """An ellipse outline: centre, radii of the stroke's middle line, stroke width (pixels)."""

    cx: float
    cy: float
    rx: float
    ry: float
    stroke: float

    @property
    def outer_box(self) -> Box:
        """The box of everything painted, stroke included."""
        half = self.stroke / 2
        return Box(
            self.cx - self.rx - half, self.cy - self.ry - half,
            self.cx + self.rx + half, self.cy + self.ry + half,
        )  # fmt: skip


def canvas_scale(width_units: float, image_width: int, image_height: int) -> float:
    """Pixels per layout unit when the canvas is fitted, aspect kept, into the image."""
    return min(image_width / width_units, image_height / CANVAS_HEIGHT)


def stroke_units(thickness: float, width_units: float) -> float:
    """The oval's line width in layout units for matplotlib's `linewidth=thickness` (points).

    The paper's axes keep equal aspect inside a 10 x 2 inch figure, so one layout unit spans
    min(12000 / width, 2400 / 200) figure pixels at 1200 dpi; a point is 1200/72 of those.
    """
    fig_w, fig_h = (inches * PAPER_DPI for inches in PAPER_FIGURE_INCHES)
    pixels_per_unit = min(fig_w / width_units, fig_h / CANVAS_HEIGHT)
    return thickness * PAPER_DPI / POINTS_PER_INCH / pixels_per_unit


def fit_oval(
    glyph_boxes: list[Box],
    index: int,
    advance_px: float,
    scale_factor: float,
    stroke: float,
    image: Box,
    *,
    narrow: bool = True,
) -> tuple[Oval, bool]:
    """The oval around glyph `index`, and whether the paper's oval would reach a neighbour.

    As in the paper, it is centred on the glyph's ink box, `scale_factor` times the glyph's
    advance wide (or its ink, when an italic glyph's ink is wider than its advance) and
    `scale_factor` times its ink height tall. That oval's box can reach another glyph's centre
    (a wide capital beside an "i" in the paper's words), which makes the label ambiguous; with
    `narrow` (vlmkit's default, not the paper's) the oval is then made just narrow enough to
    leave every other centre outside its box.

    An oval that would leave `image` is shrunk to fit. Raises LayoutError when no oval does:
    its box must cover the glyph's box and its ring must leave the middle of the glyph clear
    (CrowdedLetter when a neighbour is what prevents it).
    """
    target = glyph_boxes[index]
    if target.empty:
        raise LayoutError("the circled character draws no ink", "Remove it from --words.")
    cx, cy = target.centre
    rx = max(advance_px, target.width) * scale_factor / 2
    ry = target.height * scale_factor / 2
    half = stroke / 2
    limit = math.inf
    for other_index, other in enumerate(glyph_boxes):
        if other_index == index or other.empty:
            continue
        ox, oy = other.centre
        if abs(oy - cy) <= ry + half + CENTRE_MARGIN_PX:
            limit = min(limit, abs(ox - cx) - CENTRE_MARGIN_PX)
    crowded = rx + half > limit
    if crowded and narrow:
        rx = limit - half
    # An oval that would leave the image (an italic capital at the very end of a word drawn
    # with little padding) is made to fit, as the paper's figure clips it.
    room_x = min(cx - image.x0, image.x1 - cx) - half
    room_y = min(cy - image.y0, image.y1 - cy) - half
    clipped = rx > room_x or ry > room_y
    rx, ry = min(rx, room_x), min(ry, room_y)
    oval = Oval(cx=cx, cy=cy, rx=rx, ry=ry, stroke=stroke)
    # The box must cover the glyph's box; the stroke may lie over the edge of that box (the
    # paper's thick ovals do) but the ring's hole must keep its middle half clear.
    fits = oval.outer_box.covers(target)
    clear = rx - half >= target.width / 4 and ry - half >= target.height / 4
    if not (fits and clear):
        if crowded and narrow:
            raise CrowdedLetter(
                "its ink comes so close to a neighbour's centre that no oval fits",
                "Add --spacing, or leave this font style out.",
            )
        if clipped:
            raise LayoutError(
                "the oval would not fit inside the image",
                "Lower --oval-scale, or raise --padding or the --image-size height.",
            )
        raise LayoutError(
            "the oval's line is so thick that it would cover the letter", "Lower --thickness."
        )
    return oval, crowded
