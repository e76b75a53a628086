"""Synthetic image datasets (Pillow + FreeType only; never torch).

Shared parts: `fonts` (discovery), `glyphs` (FreeType metrics and bitmaps), `raster` (pixels and
PNG), `words` (word sources), `parallel` (ordered worker pool); `vlmkit.staging` builds the
output folder. One subpackage per generator: `circled_letter`.
"""
