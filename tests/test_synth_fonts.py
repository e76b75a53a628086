"""Bundled fonts: families, styles, licences; discovery and selection errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO

from vlmkit.errors import InputError, UsageError
from vlmkit.synth.fonts import (
    bundled_fonts_dir,
    family_and_style,
    missing_characters,
    open_face,
    scan_fonts,
    select_fonts,
)

FONTS = REPO / "fonts"


def test_bundled_fonts_dir_is_the_repositorys():
    assert bundled_fonts_dir() == FONTS


def test_bundled_families_cover_sans_serif_mono_in_every_style():
    fonts = scan_fonts(FONTS)
    families = {f.family for f in fonts}
    expected = {
        "Liberation Sans",
        "Liberation Serif",
        "Liberation Mono",
        "Open Sans",
        "DejaVu Sans",
    }
    assert expected <= families
    for family in families:
        styles = {f.style for f in fonts if f.family == family}
        assert styles == {"regular", "bold", "italic", "bold-italic"}, family


def test_readme_lists_every_font_file_and_its_licence_exists():
    readme = (FONTS / "README.md").read_text()
    listed = set()
    for pattern in re.findall(r"`([A-Za-z]+(?:-\{[^}]+\}|-\w+)?\.ttf)`", readme):
        if "{" in pattern:
            stem, styles = re.match(r"(\w+)-\{([^}]+)\}\.ttf", pattern).groups()
            listed |= {f"{stem}-{s}.ttf" for s in styles.split(",")}
        else:
            listed.add(pattern)
    assert listed == {p.name for p in FONTS.glob("*.ttf")}
    for licence in re.findall(r"\((LICENSE-\w+)\)", readme):
        assert (FONTS / licence).stat().st_size > 1000
    # Arial/Helvetica metric compatibility is what --preset paper relies on.
    assert "Helvetica" in readme and "Arial" in readme


def test_liberation_sans_has_arials_advance_widths():
    # Arial's advance widths in font units (2048/em), from its published metrics: metric
    # compatibility means Liberation Sans has exactly these.
    face = open_face(FONTS / "LiberationSans-Regular.ttf")
    arial = {"a": 1139, "i": 455, "m": 1706, "W": 1933, "U": 1479, " ": 569}
    for char, width in arial.items():
        face.load_char(char, 1)  # FT_LOAD_NO_SCALE: advances in font units
        assert face.glyph.advance.x == width, char


def test_selection_by_family_name_in_any_spelling():
    fonts = scan_fonts(FONTS)
    for spelling in ("Liberation Sans", "liberation sans", "liberation-sans"):
        chosen = select_fonts(fonts, (spelling,), ("regular", "bold-italic"))
        assert [f.path.name for f in chosen] == [
            "LiberationSans-Regular.ttf",
            "LiberationSans-BoldItalic.ttf",
        ]
    oblique = select_fonts(fonts, ("DejaVu Sans",), ("italic",))
    assert oblique[0].path.name == "DejaVuSans-Oblique.ttf"


def test_selection_errors_name_the_flag(tmp_path: Path):
    fonts = scan_fonts(FONTS)
    with pytest.raises(UsageError, match=r"--family 'Arial'.*") as error:
        select_fonts(fonts, ("Arial",), ("regular",))
    assert "Liberation Sans" in error.value.hint
    only_regular = [f for f in fonts if f.style == "regular"]
    with pytest.raises(UsageError, match=r"--style bold: family 'DejaVu Sans' has no bold"):
        select_fonts(only_regular, ("DejaVu Sans",), ("bold",))


def test_folder_errors(tmp_path: Path):
    with pytest.raises(InputError, match=r"--fonts: .* is not a folder"):
        scan_fonts(tmp_path / "missing")
    with pytest.raises(InputError, match=r"holds no \.ttf"):
        scan_fonts(tmp_path)
    (tmp_path / "broken.ttf").write_bytes(b"not a font at all")
    with pytest.raises(InputError, match=r"broken\.ttf: FreeType cannot load this font"):
        scan_fonts(tmp_path)


def test_missing_characters():
    face = open_face(FONTS / "LiberationMono-Regular.ttf")
    assert missing_characters(face, "Grüße") == ""
    assert missing_characters(face, "a東b京") == "京東"


@pytest.mark.parametrize(
    ("family", "subfamily", "bold", "italic", "expected"),
    [
        ("Open Sans", "Regular", False, False, ("Open Sans", "regular")),
        ("DejaVu Sans", "Book", False, False, ("DejaVu Sans", "regular")),
        ("Open Sans", "Semibold Italic", False, True, ("Open Sans Semibold", "italic")),
        (
            "DejaVu Sans",
            "Condensed Bold Oblique",
            True,
            True,
            ("DejaVu Sans Condensed", "bold-italic"),
        ),
    ],
)
def test_weights_and_widths_are_families_of_their_own(family, subfamily, bold, italic, expected):
    assert family_and_style(family, subfamily, bold=bold, italic=italic) == expected
