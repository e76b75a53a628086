"""Which images a circled-letter dataset holds: fonts and words checked, split by word, enumerated.

Everything that can be wrong with the inputs is found here, before a single file is written.
Samples are produced lazily, each from its own seeded generator, so memory stays flat as `--n`
grows and the result does not depend on how many worker processes draw them.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass

from vlmkit.errors import InputError, UsageError
from vlmkit.synth.circled_letter.config import CircledLetterConfig
from vlmkit.synth.circled_letter.geometry import CANVAS_HEIGHT, REFERENCE_PX
from vlmkit.synth.circled_letter.render import MIN_FONT_PX
from vlmkit.synth.fonts import (
    FontFile,
    bundled_fonts_dir,
    missing_characters,
    scan_fonts,
    select_fonts,
)
from vlmkit.synth.glyphs import GlyphSource
from vlmkit.synth.words import WordList, filter_words, load_words, non_alphanumeric

TRAIN, TEST = "train", "test"


@dataclass(frozen=True)
class Sample:
    """One image to draw."""

    split: str | None
    """"train", "test", or None for an unsplit dataset."""
    number: int
    """Position within its split; names the file and the id."""
    word: str
    """The word as drawn (its case already applied)."""
    index: int
    font: FontFile
    thickness: float
    padding: float
    spacing: float


@dataclass(frozen=True)
class Plan:
    config: CircledLetterConfig
    fonts: tuple[FontFile, ...]
    words: tuple[str, ...]
    word_list: WordList | None
    """The word source when words came from one (None for literal words, as in the paper)."""
    test_words: frozenset[str]
    """Casefolded words held out for the test split."""
    counts: dict[str | None, int]
    """Images per split."""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def split_of(self, word: str) -> str | None:
        return _split_of(word, self.test_words, self.config)

    def samples(self) -> Iterator[Sample]:
        if self.config.sampling == "grid":
            return self._grid()
        return self._random()

    def _grid(self) -> Iterator[Sample]:
        config = self.config
        numbers: dict[str | None, itertools.count[int]] = {}
        for base in self.words:
            split = self.split_of(base)
            word = _grid_word(base, config)
            combos = itertools.product(
                range(len(word)), self.fonts, config.thickness, config.padding, config.spacing
            )
            counter = numbers.setdefault(split, itertools.count())
            for index, font, thickness, padding, spacing in combos:
                yield Sample(split, next(counter), word, index, font, thickness, padding, spacing)

    def _random(self) -> Iterator[Sample]:
        config = self.config
        pools: dict[str | None, list[str]] = {}
        for word in self.words:
            pools.setdefault(self.split_of(word), []).append(word)
        for split, count in self.counts.items():
            for number in range(count):
                rng = random.Random(f"{config.seed}:{split}:{number}")
                word = apply_case(rng.choice(pools[split]), config.case, rng)
                yield Sample(
                    split=split,
                    number=number,
                    word=word,
                    index=rng.randrange(len(word)),
                    font=rng.choice(self.fonts),
                    thickness=rng.choice(config.thickness),
                    padding=rng.choice(config.padding),
                    spacing=rng.choice(config.spacing),
                )


def apply_case(word: str, case: str, rng: random.Random) -> str:
    if case == "lower":
        return word.lower()
    if case == "upper":
        return word.upper()
    if case == "title":
        return word[:1].upper() + word[1:].lower()
    if case == "mixed":
        return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in word)
    return word


def _grid_word(word: str, config: CircledLetterConfig) -> str:
    """A grid draws each word once per combination, always in the same case."""
    return apply_case(word, config.case, random.Random(f"{config.seed}:case:{word}"))


def _split_of(word: str, test_words: frozenset[str], config: CircledLetterConfig) -> str | None:
    if config.test_fraction == 0:
        return None
    return TEST if word.casefold() in test_words else TRAIN


def make_plan(config: CircledLetterConfig) -> Plan:
    """Check fonts and words against the configuration and decide the splits."""
    fonts_dir = config.fonts_dir or bundled_fonts_dir()
    if config.fonts_dir is None and not fonts_dir.is_dir():
        raise UsageError(
            f"the bundled fonts are not at {fonts_dir} (a checkout or an installed vlmkit "
            "carries them)",
            hint="Pass --fonts DIR or set VLMKIT_FONTS to a folder of .ttf/.otf files.",
        )
    fonts = tuple(select_fonts(scan_fonts(fonts_dir), config.families, config.styles))
    word_list = None
    if isinstance(config.words, str):
        word_list = load_words(config.words, alphanumeric=True)
        candidates = word_list.words
    else:
        candidates = config.words
        for word in candidates:
            if non_alphanumeric(word) or not word:
                raise UsageError(
                    f"word {word!r}: every character must be a letter or digit",
                    hint="The target is the circled character; letter_accuracy reads letters "
                    "and digits.",
                )
    words = filter_words(candidates, config.min_length, config.max_length)
    source = word_list.source if word_list else "the preset's words"
    if not words:
        raise UsageError(
            f"--min-length {config.min_length} / --max-length {config.max_length}: no word of "
            f"{source} has a length in that range",
            hint="Widen the range or give other --words.",
        )
    _check_fonts_draw_words(fonts, words, config)
    test_words = _choose_test_words(words, config)
    counts = _count_images(words, fonts, test_words, config)
    return Plan(config, fonts, words, word_list, test_words, counts)


def _case_variants(word: str, case: str) -> str:
    """Every character the word may be drawn with under `case`."""
    if case == "keep":
        return word
    if case == "mixed":
        return word.lower() + word.upper()
    return apply_case(word, case, random.Random(0))


def _check_fonts_draw_words(
    fonts: tuple[FontFile, ...], words: tuple[str, ...], config: CircledLetterConfig
) -> None:
    """Each font has every glyph needed, and the widest word is not too small to read."""
    needed = "".join(sorted({c for w in words for c in _case_variants(w, config.case)}))
    if max(config.spacing) > 0:
        needed += " "
    width_limit = config.image_size[0] * REFERENCE_PX / MIN_FONT_PX
    padding, spacing = max(config.padding), max(config.spacing)
    for font in fonts:
        source = GlyphSource(font.path, REFERENCE_PX)
        missing = missing_characters(source.face, needed)
        if missing == " ":
            raise InputError(
                f"{font.path}: font {font.family!r} has no space glyph, which --spacing measures",
                hint="Drop --spacing, or choose other --family/--fonts.",
            )
        if missing:
            word = next(w for w in words if set(_case_variants(w, config.case)) & set(missing))
            raise InputError(
                f"{font.path}: font {font.family!r} has no glyph for {missing[:20]!r} "
                f"(needed by the word {word!r})",
                hint="Choose other --family/--fonts, or remove such words from --words.",
            )
        advance = {c: source.reference(c).advance for c in needed}
        gap = spacing * source.reference(" ").advance
        widest_glyph = max(advance.values())
        for word in sorted(words, key=len, reverse=True):
            if len(word) * (widest_glyph + gap) + 2 * padding <= width_limit:
                break  # even this bound fits, so this word and every shorter one fit
            width = _drawn_width(word, config.case, advance) + gap * (len(word) - 1) + 2 * padding
            if width > width_limit:
                size = REFERENCE_PX * min(
                    config.image_size[0] / width, config.image_size[1] / CANVAS_HEIGHT
                )
                raise UsageError(
                    f"the word {word!r} is too long for a {config.image_size[0]}x"
                    f"{config.image_size[1]} image: in {font.family} with --padding {padding:g} "
                    f"and --spacing {spacing:g} its letters would be {size:.1f} px high "
                    f"(at least {MIN_FONT_PX:g} needed)",
                    hint="Use a larger --image-size, a smaller --padding or --spacing, "
                    "or shorter words (--max-length).",
                )


def _drawn_width(word: str, case: str, advance: dict[str, float]) -> float:
    """The letters' advances at the reference size; under "mixed" case, the wider of the two."""
    if case == "mixed":
        return sum(
            max(sum(advance[x] for x in c.lower()), sum(advance[x] for x in c.upper()))
            for c in word
        )
    return sum(advance[c] for c in _case_variants(word, case))


def _choose_test_words(words: tuple[str, ...], config: CircledLetterConfig) -> frozenset[str]:
    """Hold out a `test_fraction` share of the distinct words (case-insensitively)."""
    if config.test_fraction == 0:
        return frozenset()
    keys = sorted({w.casefold() for w in words})
    if len(keys) < 2:
        raise UsageError(
            f"--test-fraction {config.test_fraction:g}: a split by word needs at least two "
            f"distinct words, and there is {len(keys)}",
            hint="Give more --words, or drop --test-fraction.",
        )
    random.Random(f"{config.seed}:split").shuffle(keys)
    held_out = min(max(1, round(len(keys) * config.test_fraction)), len(keys) - 1)
    return frozenset(keys[:held_out])


def _count_images(
    words: tuple[str, ...],
    fonts: tuple[FontFile, ...],
    test_words: frozenset[str],
    config: CircledLetterConfig,
) -> dict[str | None, int]:
    if config.sampling == "grid":
        per_letter = len(fonts) * len(config.thickness) * len(config.padding) * len(config.spacing)
        counts: dict[str | None, int] = {}
        for word in words:
            split = _split_of(word, test_words, config)
            counts[split] = counts.get(split, 0) + len(_grid_word(word, config)) * per_letter
        return counts
    assert config.n is not None
    if config.test_fraction == 0:
        return {None: config.n}
    if config.n < 2:
        raise UsageError("--n must be at least 2 to hold out a test split")
    held_out = min(max(1, round(config.n * config.test_fraction)), config.n - 1)
    return {TRAIN: config.n - held_out, TEST: held_out}
