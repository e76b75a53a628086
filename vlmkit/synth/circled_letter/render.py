"""Draw one circled-letter image: lay the word out in the paper's units, render, circle a glyph."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from vlmkit.synth.circled_letter.geometry import (
    CANVAS_HEIGHT,
    REFERENCE_PX,
    LayoutError,
    Oval,
    canvas_scale,
    fit_oval,
    stroke_units,
)
from vlmkit.synth.glyphs import Box, GlyphSource, PlacedGlyph
from vlmkit.synth.raster import paint_ellipse_outline, text_canvas

MIN_FONT_PX = 10.0
"""Below this the letters are a few pixels of blur: the word is too long for the image."""


@dataclass(frozen=True)
class WordLayout:
    """Where a word goes in the final image."""

    width_units: float
    """Canvas width in layout units: the text plus padding on both sides."""
    scale: float
    """Final pixels per layout unit."""
    origins: tuple[float, ...]
    """Each glyph's pen position (x, pixels)."""
    baseline: float
    """The baseline's y (pixels)."""

    @property
    def font_px(self) -> float:
        return self.scale * REFERENCE_PX


def layout_word(
    source: GlyphSource, word: str, padding: float, spacing: float, size: tuple[int, int]
) -> WordLayout:
    """Lay `word` out as the paper does, then fit the canvas into an image of `size`.

    Advances come from the 96 px reference face; `spacing` adds that many space widths between
    letters. The ink of the whole word is centred vertically on the 200-unit canvas.
    """
    glyphs = [source.reference(char) for char in word]
    gap = spacing * source.reference(" ").advance
    pens, pen = [], padding
    for glyph in glyphs:
        pens.append(pen)
        pen += glyph.advance + gap
    width_units = pen - gap + padding
    inked = [g.ink for g in glyphs if not g.ink.empty] or [Box(0, 0, 0, 0)]
    ink_middle = (min(b.y0 for b in inked) + max(b.y1 for b in inked)) / 2
    scale = canvas_scale(width_units, *size)
    left = (size[0] - width_units * scale) / 2
    top = (size[1] - CANVAS_HEIGHT * scale) / 2
    return WordLayout(
        width_units=width_units,
        scale=scale,
        origins=tuple(left + p * scale for p in pens),
        baseline=top + (CANVAS_HEIGHT / 2 - ink_middle) * scale,
    )


@dataclass(frozen=True)
class CircledWord:
    """A rendered image and the geometry recorded in its metadata."""

    image: Image.Image
    layout: WordLayout
    glyph_boxes: tuple[Box, ...]
    oval: Oval
    crowded: bool
    """The paper's oval would have reached another glyph's centre."""


def draw_circled_word(
    source: GlyphSource,
    word: str,
    index: int,
    *,
    thickness: float,
    padding: float,
    spacing: float,
    oval_scale: float,
    narrow: bool,
    size: tuple[int, int],
    colour: tuple[int, int, int],
) -> CircledWord:
    """The word in black on white with a `colour` oval around the glyph at `index`."""
    layout = layout_word(source, word, padding, spacing, size)
    if layout.font_px < MIN_FONT_PX:
        raise LayoutError(
            f"it would be drawn {layout.font_px:.1f} px high",
            "Use a larger --image-size, a smaller --padding, or shorter words.",
        )
    placed: list[PlacedGlyph] = [
        source.render(char, layout.font_px, x, layout.baseline)
        for char, x in zip(word, layout.origins, strict=True)
    ]
    boxes = tuple(glyph.box for glyph in placed)
    stroke = stroke_units(thickness, layout.width_units) * layout.scale
    advance = source.reference(word[index]).advance * layout.scale
    image = Box(0, 0, *size)
    oval, crowded = fit_oval(list(boxes), index, advance, oval_scale, stroke, image, narrow=narrow)
    image = text_canvas(size, placed)
    paint_ellipse_outline(image, _box_tuple(oval.outer_box), stroke, colour)
    return CircledWord(image, layout, boxes, oval, crowded)


def _box_tuple(box: Box) -> tuple[float, float, float, float]:
    return box.x0, box.y0, box.x1, box.y1
