"""Draw a planned circled-letter dataset: images and metadata.jsonl per split, then synth.json."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

import freetype

from vlmkit import __version__
from vlmkit.errors import InputError, UsageError
from vlmkit.records import METADATA_FILE, DatasetRecord
from vlmkit.staging import staged_folder
from vlmkit.synth.circled_letter.config import CircledLetterConfig
from vlmkit.synth.circled_letter.geometry import REFERENCE_PX, CrowdedLetter, LayoutError
from vlmkit.synth.circled_letter.plan import Plan, Sample
from vlmkit.synth.circled_letter.render import CircledWord, draw_circled_word
from vlmkit.synth.glyphs import GlyphSource
from vlmkit.synth.parallel import ordered_map
from vlmkit.synth.raster import png_bytes

GENERATOR = "circled-letter"
SIDECAR = "synth.json"
CHUNK = 16
"""Images per task sent to a worker: enough to hide the inter-process round trip."""


@dataclass(frozen=True)
class Summary:
    """What a run wrote."""

    out: Path
    images: dict[str | None, int]
    records: int
    crowded: int
    """Images whose paper-size oval would have reached another glyph's centre."""


def write_dataset(
    plan: Plan,
    out: Path,
    *,
    workers: int = 1,
    overwrite: bool = False,
    on_image: Callable[[], None] | None = None,
) -> Summary:
    """Draw every sample of `plan` into the dataset folder `out` (see vlmkit.staging)."""
    try:
        return _write(plan, out, workers=workers, overwrite=overwrite, on_image=on_image)
    except OSError as error:  # a full disk, or a folder made read-only during the run
        raise InputError(
            f"--out {out}: cannot write the dataset ({error.strerror or error})",
            hint="Free some space or choose another --out; nothing was left under --out.",
        ) from None


def _write(
    plan: Plan,
    out: Path,
    *,
    workers: int,
    overwrite: bool,
    on_image: Callable[[], None] | None,
) -> Summary:
    tally = _Tally(images=dict.fromkeys(plan.counts, 0))
    inputs = plan.config.input_paths()
    with (
        staged_folder(out, owner=SIDECAR, overwrite=overwrite, inputs=inputs) as root,
        _metadata_files(root, plan.counts) as files,
    ):
        drawn = ordered_map(
            _draw_chunk,
            _chunks(plan.samples(), CHUNK),
            workers=workers,
            initializer=_start_worker,
            initargs=(plan.config, root),
        )
        # closing(): on an error the workers must stop writing into the staging folder before
        # it is removed, not whenever the generator happens to be garbage-collected.
        with closing(drawn):
            for chunk in drawn:
                for image_records in chunk:
                    tally.add(image_records, files)
                    if on_image is not None:
                        on_image()
        sidecar = _sidecar(plan, tally.images, tally.crowded)
        (root / SIDECAR).write_text(json.dumps(sidecar, indent=2, ensure_ascii=False) + "\n")
    return Summary(out=out, images=tally.images, records=tally.records, crowded=tally.crowded)


@dataclass
class _Tally:
    images: dict[str | None, int]
    records: int = 0
    crowded: int = 0

    def add(self, image_records: list[dict[str, Any]], files: dict[str | None, TextIO]) -> None:
        """Write one image's records to its split's metadata.jsonl and count them."""
        meta = image_records[0]["meta"]
        out = files[meta["split"]]
        for record in image_records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.images[meta["split"]] += 1
        self.records += len(image_records)
        self.crowded += meta["oval_crowded"]


@contextmanager
def _metadata_files(root: Path, splits: Iterable[str | None]) -> Iterator[dict[str | None, TextIO]]:
    """An images/ folder and an open metadata.jsonl per split, closed on the way out."""
    files: dict[str | None, TextIO] = {}
    try:
        for split in splits:
            folder = _split_folder(root, split)
            (folder / "images").mkdir(parents=True)
            files[split] = (folder / METADATA_FILE).open("w", encoding="utf-8", newline="\n")
        yield files
    finally:
        for file in files.values():
            file.close()


# Worker side. Each process keeps its config and one FreeType face per font file.
_worker: dict[str, Any] = {}


def _start_worker(config: CircledLetterConfig, root: Path) -> None:
    _worker.clear()
    _worker.update(config=config, root=root, sources={})


def _draw_chunk(samples: list[Sample]) -> list[list[dict[str, Any]]]:
    return [_draw_sample(sample) for sample in samples]


def _draw_sample(sample: Sample) -> list[dict[str, Any]]:
    config: CircledLetterConfig = _worker["config"]
    sources: dict[Path, GlyphSource] = _worker["sources"]
    source = sources.get(sample.font.path)
    if source is None:
        source = sources[sample.font.path] = GlyphSource(sample.font.path, REFERENCE_PX)
    drawn, index = _draw_some_letter(source, sample, config)
    file_name = f"images/{sample.number:06d}.png"
    (_split_folder(_worker["root"], sample.split) / file_name).write_bytes(png_bytes(drawn.image))
    return _records(replace(sample, index=index), drawn, file_name, config, sample.index)


def _draw_some_letter(
    source: GlyphSource, sample: Sample, config: CircledLetterConfig
) -> tuple[CircledWord, int]:
    """Draw the sample's letter; a random sample whose letter cannot be circled alone (an
    italic glyph whose ink reaches under its neighbour) moves to the next letter that can.

    The move depends only on the sample, so the output still does not depend on the workers.
    A grid asked for every letter, so there it is an error.
    """
    candidates = [sample.index]
    if config.sampling == "random":
        length = len(sample.word)
        candidates += [(sample.index + step) % length for step in range(1, length)]
    failure: tuple[int, LayoutError] | None = None
    for index in candidates:
        try:
            drawn = draw_circled_word(
                source,
                sample.word,
                index,
                thickness=sample.thickness,
                padding=sample.padding,
                spacing=sample.spacing,
                oval_scale=config.oval_scale,
                narrow=config.narrow_ovals,
                size=config.image_size,
                colour=config.rgb(),
            )
            return drawn, index
        except CrowdedLetter as error:
            failure = failure or (index, error)
        except LayoutError as error:  # the flags' fault: moving to another letter would hide it
            failure = (index, error)
            break
    assert failure is not None
    index, error = failure
    raise UsageError(
        f"cannot circle letter {index} of {sample.word!r} in {sample.font.slug} "
        f"(--thickness {sample.thickness:g}, --padding {sample.padding:g}, --spacing "
        f"{sample.spacing:g}): {error}",
        hint=error.fix,
    )


def _records(
    sample: Sample,
    drawn: CircledWord,
    file_name: str,
    config: CircledLetterConfig,
    planned_index: int,
) -> list[dict[str, Any]]:
    """One record per prompt style; all of them point at the same image."""
    number = f"{sample.number:06d}"
    base_id = f"{GENERATOR}/{sample.split}/{number}" if sample.split else f"{GENERATOR}/{number}"
    meta = {
        "generator": GENERATOR,
        "split": sample.split,
        "word": sample.word,
        "index": sample.index,
        "index_moved": sample.index != planned_index,
        "letter": sample.word[sample.index],
        "font": sample.font.family,
        "font_style": sample.font.style,
        "font_file": sample.font.path.name,
        "thickness": _number(sample.thickness),
        "stroke_px": round(drawn.oval.stroke, 2),
        "padding": _number(sample.padding),
        "spacing": _number(sample.spacing),
        "scale": round(drawn.layout.scale, 4),
        "font_px": round(drawn.layout.font_px, 2),
        "image_size": list(config.image_size),
        "glyph_box": drawn.glyph_boxes[sample.index].rounded(),
        "oval_box": drawn.oval.outer_box.rounded(),
        "oval_scale": config.oval_scale,
        "oval_crowded": drawn.crowded,
        "oval_narrowed": drawn.crowded and config.narrow_ovals,
        "colour": config.colour,
        "answer_format": config.answer_format,
        "seed": config.seed,
    }
    styles = config.prompt_styles()
    return [
        DatasetRecord(
            id=base_id if len(styles) == 1 else f"{base_id}/{style}",
            file_name=file_name,
            task="letter",
            prompt=config.prompt_text(style),
            target=sample.word[sample.index],
            meta={**meta, "prompt_style": style},
        ).to_json()
        for style in styles
    ]


def _sidecar(plan: Plan, images: dict[str | None, int], crowded: int) -> dict[str, Any]:
    config = plan.config
    words: dict[str, Any] = {"count": len(plan.words)}
    if plan.word_list is not None:
        words.update(source=plan.word_list.source, sha256=plan.word_list.sha256)
    return {
        "generator": GENERATOR,
        "vlmkit": __version__,
        "config": config.as_json(),
        "images": {str(split or "all"): count for split, count in images.items()},
        "ovals_crowded": crowded,
        "words": words,
        "test_words": sorted(plan.test_words),
        "fonts": [
            {"file": f.path.name, "family": f.family, "style": f.style, "sha256": f.sha256()}
            for f in plan.fonts
        ],
        "libraries": {
            "freetype": ".".join(map(str, freetype.version())),
            "freetype-py": metadata.version("freetype-py"),
            "pillow": metadata.version("pillow"),
            "numpy": metadata.version("numpy"),
        },
    }


def _split_folder(root: Path, split: str | None) -> Path:
    return root / split if split else root


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _chunks(items: Iterable[Sample], size: int) -> Iterator[list[Sample]]:
    chunk: list[Sample] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
