"""The paper's canvas arithmetic and the oval's fit (pure functions)."""

from __future__ import annotations

import pytest

from vlmkit.synth.circled_letter.geometry import (
    CrowdedLetter,
    LayoutError,
    canvas_scale,
    fit_oval,
    stroke_units,
)
from vlmkit.synth.glyphs import Box


def test_canvas_is_fitted_with_its_aspect_kept():
    # A 1000 x 200 canvas in a 512 x 512 image is width-bound; a 100 x 200 one height-bound.
    assert canvas_scale(1000, 512, 512) == pytest.approx(0.512)
    assert canvas_scale(100, 512, 512) == pytest.approx(512 / 200)


def test_stroke_follows_matplotlib_points_on_the_paper_figure():
    # Height-bound axes (width <= 1000 units): 12 figure px per unit; 4 pt = 66.7 px at 1200 dpi.
    assert stroke_units(4, 800) == pytest.approx(4 * 1200 / 72 / 12)
    # Width-bound axes: 12000 / width figure px per unit.
    assert stroke_units(4, 1500) == pytest.approx(4 * 1200 / 72 / (12000 / 1500))
    # So in a 512 px image of a wide canvas the line is thickness x 0.711 px whatever the width.
    for width in (1200, 2400):
        assert stroke_units(6, width) * canvas_scale(width, 512, 512) == pytest.approx(
            6 * 0.7111, 1e-3
        )


IMAGE = Box(0, 0, 1000, 1000)


def boxes(*spans: tuple[float, float]) -> list[Box]:
    """Glyph boxes 30 px tall on one line, at the given x spans (away from the image edges)."""
    return [Box(x0, 110, x1, 140) for x0, x1 in spans]


def test_paper_oval_when_neighbours_are_far():
    glyphs = boxes((100, 120), (140, 160), (180, 200))
    oval, crowded = fit_oval(glyphs, 1, advance_px=20, scale_factor=1.4, stroke=2, image=IMAGE)
    assert not crowded
    assert (oval.cx, oval.cy, oval.rx, oval.ry) == (150, 125, 14, 21)
    assert oval.outer_box == Box(135, 103, 165, 147)


def test_oval_is_narrowed_to_keep_a_close_neighbours_centre_out():
    # A wide glyph beside a thin one: the paper's oval (1.4 x 60 wide) would pass x = 165.
    glyphs = boxes((100, 160), (162, 166))
    oval, crowded = fit_oval(glyphs, 0, advance_px=60, scale_factor=1.4, stroke=2, image=IMAGE)
    assert crowded
    assert oval.outer_box.x1 < 164 and oval.outer_box.covers(glyphs[0])
    paper, crowded_too = fit_oval(
        glyphs, 0, advance_px=60, scale_factor=1.4, stroke=2, image=IMAGE, narrow=False
    )
    assert crowded_too and paper.outer_box.contains_point(*glyphs[1].centre)


def test_neighbours_at_another_height_do_not_narrow():
    glyphs = [Box(100, 110, 160, 140), Box(162, 300, 166, 330)]
    _, crowded = fit_oval(glyphs, 0, advance_px=60, scale_factor=1.4, stroke=2, image=IMAGE)
    assert not crowded


def test_glyphs_that_cannot_be_circled_alone_raise():
    with pytest.raises(LayoutError, match="no ink"):
        fit_oval(
            [Box(100, 100, 100, 100), Box(105, 100, 109, 109)], 0,
            advance_px=5, scale_factor=1.4, stroke=1, image=IMAGE,
        )  # fmt: skip
    # Overlapping glyphs: no oval can hold one and leave the other's centre out.
    with pytest.raises(CrowdedLetter, match="neighbour"):
        fit_oval(boxes((100, 140), (110, 130)), 0, advance_px=40, scale_factor=1.4, stroke=2,
                 image=IMAGE)  # fmt: skip


def test_an_italic_glyph_wider_than_its_advance_is_still_surrounded():
    # Ink 54 px wide on a 30 px advance (an italic f): the paper's 1.4 x advance would not do.
    glyphs = [Box(100, 110, 154, 160)]
    oval, _ = fit_oval(glyphs, 0, advance_px=30, scale_factor=1.4, stroke=2, image=IMAGE)
    assert oval.outer_box.covers(glyphs[0])
    assert oval.rx == pytest.approx(54 * 1.4 / 2)


def test_a_ring_that_would_hide_its_letter_is_refused():
    glyphs = boxes((100, 120))
    fit_oval(glyphs, 0, advance_px=20, scale_factor=1.4, stroke=4, image=IMAGE)
    with pytest.raises(LayoutError, match="so thick") as error:
        fit_oval(glyphs, 0, advance_px=20, scale_factor=1.4, stroke=20, image=IMAGE)
    assert not isinstance(error.value, CrowdedLetter)
    assert "--thickness" in error.value.fix


def test_an_oval_near_the_edge_is_shrunk_into_the_image():
    glyphs = [Box(2, 110, 22, 140)]
    oval, _ = fit_oval(glyphs, 0, advance_px=20, scale_factor=1.4, stroke=2, image=IMAGE)
    assert IMAGE.covers(oval.outer_box) and oval.outer_box.covers(glyphs[0])
    # A glyph that pokes out of the image cannot be surrounded inside it.
    with pytest.raises(LayoutError, match="inside the image") as error:
        fit_oval([Box(-3, 110, 17, 140)], 0, advance_px=20, scale_factor=1.4, stroke=2,
                 image=IMAGE)  # fmt: skip
    assert "--oval-scale" in error.value.fix
