"""The circled-letter generator: the paper's grid, geometry, splits, determinism, records."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synth_helpers import draw, records, tree_bytes

from vlmkit.errors import InputError, UsageError
from vlmkit.records import read_dataset
from vlmkit.synth.circled_letter import Sample, from_preset, make_plan
from vlmkit.synth.circled_letter.config import BRACES_SUFFIX, PAPER_WORDS
from vlmkit.synth.circled_letter.geometry import REFERENCE_PX, CrowdedLetter
from vlmkit.synth.circled_letter.render import draw_circled_word
from vlmkit.synth.fonts import bundled_fonts_dir, scan_fonts, select_fonts
from vlmkit.synth.glyphs import Box, GlyphSource

META_KEYS = {
    "word", "index", "letter", "font", "font_style", "font_file", "thickness", "stroke_px",
    "padding", "spacing", "scale", "font_px", "glyph_box", "oval_box", "oval_crowded",
    "oval_narrowed", "seed", "split", "prompt_style", "answer_format", "colour", "image_size",
    "index_moved", "oval_scale",
}  # fmt: skip


@pytest.fixture(scope="module")
def paper(tmp_path_factory) -> Path:
    """The paper's grid at its real size, drawn once for the module."""
    out = tmp_path_factory.mktemp("paper") / "paper"
    draw(out, "paper", image_size=(512, 512), workers=2)
    return out


def draw_sample(sample, config, sources, *, narrow=True):
    source = sources.setdefault(sample.font.path, GlyphSource(sample.font.path, REFERENCE_PX))
    return draw_circled_word(
        source, sample.word, sample.index, thickness=sample.thickness, padding=sample.padding,
        spacing=sample.spacing, oval_scale=config.oval_scale, narrow=narrow,
        size=config.image_size, colour=config.rgb(),
    )  # fmt: skip


def test_paper_grid_is_exactly_the_papers(paper: Path):
    rows = records(paper)
    assert len(rows) == 1248 == 52 * 2 * 3 * 4
    metas = [r["meta"] for r in rows]
    assert {m["word"] for m in metas} == set(PAPER_WORDS)
    assert {m["font"] for m in metas} == {"Liberation Sans", "Open Sans"}
    assert {m["thickness"] for m in metas} == {4, 5, 6}
    assert {m["padding"] for m in metas} == {25, 50, 100, 200}
    combos = Counter((m["word"], m["index"]) for m in metas)
    assert len(combos) == 52 and set(combos.values()) == {24}
    assert len({r["id"] for r in rows}) == 1248
    assert all(r["target"] == r["meta"]["word"][r["meta"]["index"]] for r in rows)


def test_every_paper_oval_holds_its_glyph_and_no_other_centre():
    config = from_preset("paper")
    plan = make_plan(config)
    sources: dict = {}
    repeated_e = set()
    for sample in plan.samples():
        drawn = draw_sample(sample, config, sources)
        oval_box = drawn.oval.outer_box
        assert oval_box.covers(drawn.glyph_boxes[sample.index]), sample
        for other, box in enumerate(drawn.glyph_boxes):
            if other != sample.index:
                assert not oval_box.contains_point(*box.centre), (sample, other)
        if sample.word == "Acknowledgement" and sample.word[sample.index] == "e":
            repeated_e.add(sample.index)
    assert repeated_e == {7, 10, 12}  # the three e's, each circled and checked above


def test_paper_size_ovals_would_reach_neighbours():
    # Why vlmkit narrows: with the paper's exact oval, "U" in tHyUi... also circles the "i".
    config = from_preset("paper", narrow_ovals=False)
    sources: dict = {}
    sample = next(
        s for s in make_plan(config).samples()
        if s.word == PAPER_WORDS[2] and s.index == 3 and s.font.family == "Liberation Sans"
    )  # fmt: skip
    drawn = draw_sample(sample, config, sources, narrow=False)
    assert drawn.crowded
    assert drawn.oval.outer_box.contains_point(*drawn.glyph_boxes[4].centre)


def red_and_dark_masks(path: Path) -> tuple[np.ndarray, np.ndarray]:
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 110) & (pixels[..., 2] < 110)
    dark = pixels.max(axis=2) < 100
    return red, dark


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    return cols.min(), rows.min(), cols.max() + 1, rows.max() + 1


def test_recorded_boxes_match_the_pixels(paper: Path):
    for row in records(paper)[::37]:
        meta = row["meta"]
        image = Image.open(paper / row["file_name"])
        assert image.size == (512, 512) and image.mode == "RGB"
        red, dark = red_and_dark_masks(paper / row["file_name"])
        pixels = np.asarray(Image.open(paper / row["file_name"]).convert("RGB")).astype(int)
        # Any grey: the text's ink, anti-aliased edges included; the oval's pixels are tinted.
        spread = pixels.max(axis=2) - pixels.min(axis=2)
        inked = (pixels.max(axis=2) < 250) & (spread < 24)
        x0, y0, x1, y1 = meta["oval_box"]
        rx0, ry0, rx1, ry1 = bbox(red)
        # The painted oval fills its recorded box to within a pixel of anti-aliasing.
        assert abs(rx0 - x0) <= 1.5 and abs(ry0 - y0) <= 1.5, row["id"]
        assert abs(rx1 - x1) <= 1.5 and abs(ry1 - y1) <= 1.5, row["id"]
        # The recorded glyph box is the circled glyph's bitmap: its ink reaches each edge.
        gx0, gy0, gx1, gy1 = meta["glyph_box"]
        ink = inked[gy0:gy1, gx0:gx1]
        assert ink.any(), row["id"]
        ix0, iy0, ix1, iy1 = bbox(ink)
        assert ix0 <= 1 and iy0 <= 1 and ix1 >= ink.shape[1] - 1 and iy1 >= ink.shape[0] - 1
        # ... and it is that letter's box, not a neighbour's: its centre is the oval's.
        ox, oy = (x0 + x1) / 2, (y0 + y1) / 2
        assert abs((gx0 + gx1) / 2 - ox) <= 0.5 and abs((gy0 + gy1) / 2 - oy) <= 0.5
        assert not dark[:, :5].any() and not dark[:5, :].any()  # white margins


def test_records_follow_the_dataset_contract(paper: Path):
    loaded = list(read_dataset(paper))
    assert len(loaded) == 1248
    first = loaded[0]
    assert first.task == "letter"
    assert first.prompt == f"Which letter is being circled? {BRACES_SUFFIX}"
    assert (paper / first.file_name).is_file() and first.file_name.startswith("images/")
    assert set(first.meta) >= META_KEYS
    assert first.meta["seed"] == 0 and first.meta["split"] is None


def test_split_by_word_never_shares_a_word(tmp_path: Path):
    summary = draw(tmp_path / "d", n=120, test_fraction=0.25, seed=7)
    assert summary.images == {"train": 90, "test": 30}
    train = {r["meta"]["word"].casefold() for r in records(tmp_path / "d" / "train")}
    test = {r["meta"]["word"].casefold() for r in records(tmp_path / "d" / "test")}
    assert train and test and not train & test
    assert all(r["id"].startswith("circled-letter/test/") for r in records(tmp_path / "d" / "test"))


def test_grid_split_puts_each_word_wholly_in_one_split():
    plan = make_plan(from_preset("paper", test_fraction=0.3))
    assert len(plan.test_words) == 1
    words_by_split: dict = {}
    for sample in plan.samples():
        words_by_split.setdefault(sample.split, set()).add(sample.word)
    assert set(words_by_split) == {"train", "test"}
    assert not words_by_split["train"] & words_by_split["test"]
    assert sum(plan.counts.values()) == 1248


def test_case_variants_never_cross_the_split():
    plan = make_plan(from_preset("random", n=300, case="mixed", test_fraction=0.5, seed=3))
    by_split: dict = {}
    for sample in plan.samples():
        by_split.setdefault(sample.split, set()).add(sample.word.casefold())
    assert not by_split["train"] & by_split["test"]


def test_same_flags_give_the_same_bytes_with_any_number_of_workers(tmp_path: Path):
    flags = dict(n=40, test_fraction=0.2, seed=11, spacing=(0.0, 1.5), case="mixed")
    flags["image_size"] = (256, 256)
    trees = []
    for workers in (1, 2, 3):
        draw(tmp_path / f"w{workers}", workers=workers, **flags)
        trees.append(tree_bytes(tmp_path / f"w{workers}"))
    assert len(trees[0]) == 40 + 2 * 1 + 2  # images, two metadata files, synth.json, inventory
    assert trees[0] == trees[1] == trees[2]
    draw(tmp_path / "other-seed", **{**flags, "seed": 12})
    assert tree_bytes(tmp_path / "other-seed") != trees[0]


def test_both_prompts_make_two_records_per_image(tmp_path: Path):
    draw(tmp_path / "d", n=5, prompt="both", answer_format="plain", colour="#0000ff")
    rows = records(tmp_path / "d")
    assert len(rows) == 10
    assert rows[0]["file_name"] == rows[1]["file_name"]
    assert rows[0]["id"].endswith("/circled") and rows[1]["id"].endswith("/highlighted")
    assert rows[0]["prompt"] == "Which letter is being circled?"
    assert rows[1]["prompt"] == "Which character is being highlighted with a coloured oval?"
    red, _ = red_and_dark_masks(tmp_path / "d" / rows[0]["file_name"])
    assert not red.any()  # a blue oval


@pytest.mark.parametrize(
    ("case", "check"),
    [
        ("upper", str.isupper),
        ("lower", str.islower),
        ("title", lambda w: w[0].isupper() and w[1:].islower()),
        ("mixed", lambda w: True),
    ],
)
def test_case(case, check):
    samples = list(itertools.islice(make_plan(from_preset("random", case=case)).samples(), 50))
    assert all(check(s.word) for s in samples)
    if case == "mixed":
        assert any(not s.word.islower() and not s.word.isupper() for s in samples)


def test_spacing_spreads_the_letters():
    config = from_preset("paper")
    sample = next(make_plan(config).samples())
    sources: dict = {}
    tight = draw_sample(sample, config, sources)
    spaced = draw_sample(type(sample)(**{**sample.__dict__, "spacing": 2.0}), config, sources)
    gap = lambda d: d.glyph_boxes[1].x0 - d.glyph_boxes[0].x1  # noqa: E731
    assert gap(spaced) > gap(tight) + 5


def test_bold_and_italic_on_request(tmp_path: Path):
    draw(tmp_path / "d", n=30, styles=("bold", "italic"), families=("Liberation Serif",))
    styles = Counter(r["meta"]["font_style"] for r in records(tmp_path / "d"))
    assert set(styles) == {"bold", "italic"}
    assert {r["meta"]["font_file"] for r in records(tmp_path / "d")} == {
        "LiberationSerif-Bold.ttf",
        "LiberationSerif-Italic.ttf",
    }


def test_samples_are_lazy_so_memory_stays_flat():
    plan = make_plan(from_preset("random", n=10**9))
    assert plan.total == 10**9
    first = list(itertools.islice(plan.samples(), 3))
    assert [s.number for s in first] == [0, 1, 2]


def test_too_long_word_names_the_word_and_the_fix(tmp_path: Path):
    words = tmp_path / "w.txt"
    words.write_text("short\n" + "x" * 60 + "\n")
    with pytest.raises(UsageError, match=r"the word 'x{60}' is too long for a 128x128") as error:
        make_plan(from_preset("random", words=str(words), max_length=60, image_size=(128, 128)))
    assert "--max-length" in error.value.hint


def test_font_without_a_glyph_names_the_font_and_the_word(tmp_path: Path):
    words = tmp_path / "w.txt"
    words.write_text("hello\n東京\n")
    with pytest.raises(InputError, match=r"LiberationMono-Regular\.ttf: .* no glyph") as error:
        make_plan(
            from_preset("random", words=str(words), min_length=1, families=("Liberation Mono",))
        )
    assert "needed by the word '東京'" in error.value.message


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"min_length": 30, "max_length": 40}, "no word of bundled has a length"),
        ({"words": ("only",), "test_fraction": 0.5}, "at least two distinct words"),
        ({"n": 1, "test_fraction": 0.5}, "--n must be at least 2"),
    ],
)
def test_plan_errors(overrides, message):
    with pytest.raises(UsageError, match=message):
        make_plan(from_preset("random", **overrides))


ALPHABET_WORDS = ("abcdefghijklm", "nopqrstuvwxyz", "ABCDEFGHIJKLM", "NOPQRSTUVWXYZ", "0123456789")


@pytest.mark.parametrize("font", scan_fonts(bundled_fonts_dir()), ids=lambda f: f.slug)
def test_every_bundled_glyph_is_circled_alone_or_reported_crowded(font):
    # Every letter and digit of every bundled font and style, at the paper's extremes
    # (thin ring, little padding; thick ring, wide padding): each oval holds its glyph, leaves
    # every other centre out and stays in the image; the only failure allowed is a glyph whose
    # ink reaches under a neighbour (italic f and j), which random sampling moves away from.
    source = GlyphSource(font.path, REFERENCE_PX)
    image = Box(0, 0, 512, 512)
    for word, thickness, padding in itertools.product(ALPHABET_WORDS, (4, 6), (25, 200)):
        for index in range(len(word)):
            try:
                drawn = draw_circled_word(
                    source, word, index, thickness=thickness, padding=padding, spacing=0,
                    oval_scale=1.4, narrow=True, size=(512, 512), colour=(255, 0, 0),
                )  # fmt: skip
            except CrowdedLetter:
                assert font.style in ("italic", "bold-italic"), (word, index)
                continue
            oval_box = drawn.oval.outer_box
            assert oval_box.covers(drawn.glyph_boxes[index]) and image.covers(oval_box)
            centres = [b.centre for i, b in enumerate(drawn.glyph_boxes) if i != index]
            assert not any(oval_box.contains_point(*c) for c in centres), (word, index)


def italic_sample(word: str, index: int) -> Sample:
    fonts = select_fonts(scan_fonts(bundled_fonts_dir()), ("Liberation Sans",), ("italic",))
    return Sample(None, 0, word, index, fonts[0], thickness=4, padding=25, spacing=0)


def test_random_sampling_moves_off_a_letter_that_cannot_be_circled_alone(tmp_path: Path):
    from vlmkit.synth.circled_letter import generate

    config = from_preset("random", n=1)
    generate._start_worker(config, tmp_path)
    (tmp_path / "images").mkdir()
    # The italic f's ink reaches under the j: no oval holds the f alone.
    [record] = generate._draw_sample(italic_sample("fjord", 0))
    assert record["meta"]["index"] != 0 and record["meta"]["index_moved"] is True
    assert record["target"] == "fjord"[record["meta"]["index"]]
    [plain] = generate._draw_sample(italic_sample("fjord", 3))
    assert plain["meta"]["index"] == 3 and plain["meta"]["index_moved"] is False


def test_a_grid_reports_a_letter_that_cannot_be_circled_alone(tmp_path: Path):
    from vlmkit.synth.circled_letter import generate

    generate._start_worker(from_preset("paper"), tmp_path)
    (tmp_path / "images").mkdir()
    with pytest.raises(UsageError, match=r"cannot circle letter 0 of 'fjord' .*neighbour") as error:
        generate._draw_sample(italic_sample("fjord", 0))
    assert "--spacing" in error.value.hint


def test_words_must_be_letters_and_digits():
    with pytest.raises(UsageError, match="every character must be a letter or digit"):
        make_plan(from_preset("paper", words=("co-op",)))
