"""Font discovery for the generators: family, style and glyph coverage, as FreeType reads them."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import freetype

from vlmkit.errors import InputError, UsageError

FONT_SUFFIXES = (".ttf", ".otf", ".ttc")
STYLES = ("regular", "bold", "italic", "bold-italic")
ENV_FONTS_DIR = "VLMKIT_FONTS"


@dataclass(frozen=True)
class FontFile:
    """One font file and what FreeType says it is."""

    path: Path
    family: str
    """Family name from the font's own name table, e.g. "Liberation Sans"."""
    style: str
    """One of STYLES, from FreeType's bold/italic style flags (an oblique counts as italic)."""

    @property
    def slug(self) -> str:
        """Stable short name for ids and tables: "liberation-sans-regular"."""
        return family_key(self.family) + "-" + self.style

    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def bundled_fonts_dir() -> Path:
    """Where `--fonts` points by default: $VLMKIT_FONTS, else the bundled fonts.

    The repository's `fonts/` folder is installed as the data package `vlmkit.fonts` (see
    pyproject.toml); run from a checkout without installing, it is found beside the package.
    """
    override = os.environ.get(ENV_FONTS_DIR)
    if override:
        return Path(override)
    spec = importlib.util.find_spec("vlmkit.fonts")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parents[2] / "fonts"


def open_face(path: Path) -> freetype.Face:
    """Load a font with FreeType, turning its exceptions into an error that names the file."""
    try:
        face = freetype.Face(str(path))
    except (freetype.FT_Exception, OSError) as error:
        raise InputError(
            f"{path}: FreeType cannot load this font ({_reason(error)})",
            hint="Pass a TrueType/OpenType file, or remove it from the --fonts folder.",
        ) from None
    if not face.is_scalable:
        raise InputError(
            f"{path}: a bitmap-only font cannot be scaled to the image size",
            hint="Use an outline (TrueType/OpenType) font.",
        )
    return face


def _reason(error: Exception) -> str:
    # FreeType's message arrives as "FT_Exception:  (unknown file format)".
    return str(error).replace("FT_Exception:", "").strip(" ()") or type(error).__name__


# Subfamily words that only say regular/bold/italic; any other word (Light, Semibold,
# Condensed...) names a face of its own.
PLAIN_STYLE_WORDS = {"regular", "book", "normal", "roman", "bold", "italic", "oblique"}


def describe(path: Path) -> FontFile:
    face = open_face(path)
    bold = bool(face.style_flags & freetype.FT_STYLE_FLAG_BOLD)
    italic = bool(face.style_flags & freetype.FT_STYLE_FLAG_ITALIC)
    family = (face.family_name or b"").decode("utf-8", "replace").strip() or path.stem
    subfamily = (face.style_name or b"").decode("utf-8", "replace")
    return FontFile(path, *family_and_style(family, subfamily, bold=bold, italic=italic))


def family_and_style(family: str, subfamily: str, *, bold: bool, italic: bool) -> tuple[str, str]:
    """("Open Sans", "Semibold Italic") -> ("Open Sans Semibold", "italic").

    A folder holding a whole font package (Light, Semibold, Condensed...) must not let a Light
    file pass for the family's regular one.
    """
    extra = [w for w in subfamily.split() if w.casefold() not in PLAIN_STYLE_WORDS]
    if extra:
        family = f"{family} {' '.join(extra)}"
    style = {(False, False): "regular", (True, False): "bold", (False, True): "italic"}
    return family, style.get((bold, italic), "bold-italic")


def scan_fonts(directory: Path) -> list[FontFile]:
    """Every font file in `directory` (not recursive), sorted by family, style and file name."""
    if not directory.is_dir():
        raise InputError(
            f"--fonts: {directory} is not a folder",
            hint="Point --fonts at a folder of .ttf/.otf files (default: the bundled fonts/).",
        )
    paths = sorted(p for p in directory.iterdir() if p.suffix.lower() in FONT_SUFFIXES)
    if not paths:
        raise InputError(
            f"--fonts: {directory} holds no .ttf, .otf or .ttc files",
            hint="Point --fonts at a folder of font files.",
        )
    fonts = [describe(path) for path in paths]
    return sorted(fonts, key=lambda f: (f.family, STYLES.index(f.style), f.path.name))


def select_fonts(
    fonts: list[FontFile], families: tuple[str, ...], styles: tuple[str, ...]
) -> list[FontFile]:
    """The fonts of the asked families (all when empty) in the asked styles, in a stable order.

    Each asked family must exist, and each must have every asked style: a grid that silently
    lost a style would not be the grid the user asked for.
    """
    by_family: dict[str, list[FontFile]] = {}
    for font in fonts:
        by_family.setdefault(family_key(font.family), []).append(font)
    chosen = []
    # Keyed by family_key: "Open Sans" and "open-sans" asked twice must not draw every image twice.
    asked_by_key: dict[str, str] = {}
    for name in families or [group[0].family for group in by_family.values()]:
        asked_by_key.setdefault(family_key(name), name)
    for key, asked in asked_by_key.items():
        group = by_family.get(key)
        if group is None:
            known = ", ".join(sorted({f.family for f in fonts}))
            raise UsageError(
                f"--family {asked!r}: no font of that family in the --fonts folder",
                hint=f"Families there: {known}.",
            )
        for style in dict.fromkeys(styles):
            matches = [f for f in group if f.style == style]
            if not matches:
                have = ", ".join(sorted({f.style for f in group}))
                raise UsageError(
                    f"--style {style}: family {group[0].family!r} has no {style} font",
                    hint=f"It has: {have}. Drop --style {style} or add the file to --fonts.",
                )
            chosen.append(matches[0])
    return chosen


def family_key(name: str) -> str:
    """ "Liberation Sans", "liberation sans" and "liberation-sans" name the same family."""
    return "-".join(name.casefold().replace("-", " ").split())


def missing_characters(face: freetype.Face, text: str) -> str:
    """The characters of `text` the font has no glyph for (it would draw its .notdef box)."""
    return "".join(sorted({c for c in text if face.get_char_index(c) == 0}))
