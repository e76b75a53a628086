"""The paper's canvas arithmetic and the oval's fit (pure functions)."""

from __future__ import annotations

import pytest

from vlmkit.synth.circled_letter.geometry import (
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


def boxes(*spans: tuple[float, float]) -> list[Box]:
    return [Box(x0, 10, x1, 40) for x0, x1 in spans]


def test_paper_oval_when_neighbours_are_far():
    glyphs = boxes((0, 20), (40, 60), (80, 100))
    oval, crowded = fit_oval(glyphs, 1, advance_px=20, scale_factor=1.4, stroke=2)
    assert not crowded
    assert (oval.cx, oval.cy, oval.rx, oval.ry) == (50, 25, 14, 21)
    assert oval.outer_box == Box(35, 3, 65, 47)


def test_oval_is_narrowed_to_keep_a_close_neighbours_centre_out():
    # A wide glyph beside a thin one: the paper's oval (1.4 x 60 wide) would pass x = 65.
    glyphs = boxes((0, 60), (62, 66))
    oval, crowded = fit_oval(glyphs, 0, advance_px=60, scale_factor=1.4, stroke=2)
    assert crowded
    assert oval.outer_box.x1 < 64 and oval.outer_box.covers(glyphs[0])
    paper, crowded_too = fit_oval(
        glyphs, 0, advance_px=60, scale_factor=1.4, stroke=2, narrow=False
    )
    assert crowded_too and paper.outer_box.contains_point(*glyphs[1].centre)


def test_neighbours_at_another_height_do_not_narrow():
    glyphs = [Box(0, 10, 60, 40), Box(62, 200, 66, 230)]
    _, crowded = fit_oval(glyphs, 0, advance_px=60, scale_factor=1.4, stroke=2)
    assert not crowded


def test_impossible_fits_raise():
    with pytest.raises(LayoutError, match="no ink"):
        fit_oval([Box(0, 0, 0, 0), Box(5, 0, 9, 9)], 0, advance_px=5, scale_factor=1.4, stroke=1)
    # Overlapping glyphs: no oval can hold one and leave the other's centre out.
    with pytest.raises(LayoutError, match="neighbour"):
        fit_oval(boxes((0, 40), (10, 30)), 0, advance_px=40, scale_factor=1.4, stroke=2)
