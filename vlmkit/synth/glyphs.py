"""Glyph metrics and bitmaps from FreeType: layout at a reference size, drawing at the final one."""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass
from pathlib import Path

import freetype
import numpy as np

from vlmkit.synth.fonts import open_face

# The paper's flags: hinted, anti-aliased 8-bit coverage.
RENDER_FLAGS = freetype.FT_LOAD_RENDER | freetype.FT_LOAD_TARGET_NORMAL
IDENTITY = freetype.Matrix(0x10000, 0, 0, 0x10000)
SUBPIXEL = 64  # FreeType's 26.6 fixed point


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in image pixels, y down; x1/y1 are exclusive edges."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2

    @property
    def empty(self) -> bool:
        return self.width <= 0 or self.height <= 0

    def covers(self, other: Box) -> bool:
        return (
            self.x0 <= other.x0 and self.y0 <= other.y0 and self.x1 >= other.x1
            and self.y1 >= other.y1
        )  # fmt: skip

    def contains_point(self, x: float, y: float) -> bool:
        return self.x0 <= x <= self.x1 and self.y0 <= y <= self.y1

    def rounded(self, digits: int = 2) -> list[float]:
        return [round(v, digits) for v in (self.x0, self.y0, self.x1, self.y1)]


@dataclass(frozen=True)
class ReferenceGlyph:
    """A glyph at the layout's reference size, relative to its origin on the baseline (y down)."""

    advance: float
    ink: Box


@dataclass(frozen=True)
class PlacedGlyph:
    """A rendered glyph: its coverage bitmap and the pixel at which its top-left corner lies."""

    coverage: np.ndarray
    left: int
    top: int

    @property
    def box(self) -> Box:
        rows, cols = self.coverage.shape
        return Box(self.left, self.top, self.left + cols, self.top + rows)


class GlyphSource:
    """One font face, used first to lay a word out at a reference size, then to draw it.

    Reference metrics are cached per character; a worker keeps one source per font file.
    """

    def __init__(self, path: Path, reference_px: float) -> None:
        self.path = path
        self.reference_px = reference_px
        self.face = open_face(path)
        self._reference: dict[str, ReferenceGlyph] = {}
        self._size: float | None = None

    def _set_size(self, pixels: float) -> None:
        if pixels != self._size:
            self.face.set_char_size(0, round(pixels * SUBPIXEL))
            self._size = pixels

    def reference(self, char: str) -> ReferenceGlyph:
        cached = self._reference.get(char)
        if cached is None:
            self._set_size(self.reference_px)
            self.face.set_transform(IDENTITY, freetype.Vector(0, 0))
            self.face.load_char(char, freetype.FT_LOAD_DEFAULT)
            metrics = self.face.glyph.metrics
            left = metrics.horiBearingX / SUBPIXEL
            top = -metrics.horiBearingY / SUBPIXEL
            ink = Box(left, top, left + metrics.width / SUBPIXEL, top + metrics.height / SUBPIXEL)
            cached = ReferenceGlyph(advance=self.face.glyph.advance.x / SUBPIXEL, ink=ink)
            self._reference[char] = cached
        return cached

    def render(self, char: str, pixels: float, x: float, baseline: float) -> PlacedGlyph:
        """Draw `char` at `pixels` size with its origin at (x, baseline), to 1/64 pixel."""
        self._set_size(pixels)
        column, row = math.floor(x), math.floor(baseline)
        # The sub-pixel part moves the outline before rasterising (FreeType's y points up).
        delta = freetype.Vector(round((x - column) * SUBPIXEL), -round((baseline - row) * SUBPIXEL))
        self.face.set_transform(IDENTITY, delta)
        self.face.load_char(char, RENDER_FLAGS)
        glyph = self.face.glyph
        bitmap = glyph.bitmap
        if bitmap.rows and bitmap.width:
            # One bytes copy of FreeType's buffer: `bitmap.buffer` builds a Python list (slow),
            # and np.ctypeslib.as_array makes a ctypes type per shape that ctypes caches forever.
            address = ctypes.cast(bitmap._FT_Bitmap.buffer, ctypes.c_void_p).value
            raw = ctypes.string_at(address, bitmap.rows * bitmap.pitch)
            rows = np.frombuffer(raw, dtype=np.uint8).reshape(bitmap.rows, bitmap.pitch)
            coverage = rows[:, : bitmap.width]
        else:
            coverage = np.zeros((0, 0), dtype=np.uint8)
        return PlacedGlyph(coverage, column + glyph.bitmap_left, row - glyph.bitmap_top)
