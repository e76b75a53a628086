"""Image resolution: one family-independent cap and each family's own knobs, set on the processor.

`--max-image-tokens N` caps the tokens one image may take, mapped to the knob the family's image
processor reads:
- Qwen2-VL, Qwen2.5-VL: `max_pixels` = N x 28 x 28 (one token per 28 x 28 pixels, after the
  2 x 2 merge); `min_pixels` is lowered to it where it was above.
- Idefics3 / SmolVLM: the longest edge the image is resized to, in whole tiles: k tiles a side
  give up to (k x k + 1) x tokens-per-tile (the split tiles and the global image); a cap under
  two tiles' worth keeps one tile (no split).
- Llama 3.2 Vision: `max_image_tiles` = N // tokens-per-tile (its image tokens are
  cross-attention states, not prompt tokens).
- PaliGemma, LLaVA, Gemma 3: fixed by the checkpoint (Gemma 3's pan-and-scan is read only from
  each processor call's arguments, which TRL's trainers do not pass: vlmkit leaves it off): a cap
  at or above their count changes nothing, one below it is an error.

The family's own knobs, for those who know them: `--image-max-pixels`, `--image-min-pixels`
(Qwen), `--image-longest-edge`, `--image-splitting/--no-image-splitting` (Idefics3),
`--max-image-tiles` (Mllama). A knob of another family is an error naming the family and its
knobs. Stdlib only at import: the processor is passed in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from vlmkit.errors import UsageError

FLAGS = {
    "max_image_tokens": "--max-image-tokens",
    "image_max_pixels": "--image-max-pixels",
    "image_min_pixels": "--image-min-pixels",
    "image_longest_edge": "--image-longest-edge",
    "image_splitting": "--image-splitting/--no-image-splitting",
    "max_image_tiles": "--max-image-tiles",
}

FAMILY_KNOBS: dict[str, tuple[str, ...]] = {
    "qwen2-vl": ("image_max_pixels", "image_min_pixels"),
    "qwen2.5-vl": ("image_max_pixels", "image_min_pixels"),
    "idefics3": ("image_longest_edge", "image_splitting"),
    "mllama": ("max_image_tiles",),
}
"""The knobs of each family that has any, besides --max-image-tokens."""

QWEN_PIXELS_PER_TOKEN = 28 * 28


@dataclass(frozen=True)
class ImageSettings:
    """How images are preprocessed, as asked (None: the processor's own setting)."""

    max_image_tokens: int | None = None
    image_max_pixels: int | None = None
    image_min_pixels: int | None = None
    image_longest_edge: int | None = None
    image_splitting: bool | None = None
    max_image_tiles: int | None = None

    def __post_init__(self) -> None:
        for name, value in self.given().items():
            if isinstance(value, bool):
                continue
            if not isinstance(value, int) or value < 1:
                raise UsageError(
                    f"{FLAGS[name]} must be a whole number of at least 1, got {value!r}",
                    hint="leave it out for the processor's own setting",
                )
        low, high = self.image_min_pixels, self.image_max_pixels
        if low is not None and high is not None and low > high:
            raise UsageError(
                f"--image-min-pixels {low} is above --image-max-pixels {high}",
                hint="the smallest image cannot be larger than the largest",
            )

    def given(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if value is not None}

    def as_flags(self) -> str:
        """The settings given, as the flags that give them (for messages)."""
        shown = []
        for name, value in self.given().items():
            if name == "image_splitting":
                shown.append("--image-splitting" if value else "--no-image-splitting")
            else:
                shown.append(f"{FLAGS[name]} {value}")
        return " ".join(shown) or "the processor's own"

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ImageSettings:
        return cls(**{k: v for k, v in (data or {}).items() if k in FLAGS})


def apply_image_settings(
    processor: Any, family: Any, settings: ImageSettings, config: dict[str, Any]
) -> dict[str, Any]:
    """Set `settings` on `processor`'s image processor (checked against `family` first) and
    return the preprocessing record: what was asked, and the values now in effect."""
    knobs = FAMILY_KNOBS.get(family.name, ())
    foreign = [
        name for name in settings.given() if name != "max_image_tokens" and name not in knobs
    ]
    if foreign:
        supported = ", ".join(FLAGS[k] for k in ("max_image_tokens", *knobs))
        raise UsageError(
            f"{', '.join(FLAGS[name] for name in foreign)}: {family.title} has no such knob",
            hint=f"{family.title} takes: {supported}",
        )
    image = processor.image_processor
    if family.name in ("qwen2-vl", "qwen2.5-vl"):
        _qwen(image, settings)
    elif family.name == "idefics3":
        _idefics3(processor, image, settings)
    elif family.name == "mllama":
        _mllama(image, settings, config, family)
    elif settings.max_image_tokens is not None:
        _fixed(processor, image, settings.max_image_tokens, family)
    return {"family": family.name, "settings": settings.given(),
            "effective": effective(image, family)}  # fmt: skip


def effective(image: Any, family: Any) -> dict[str, Any]:
    """The image processor's values that decide how many tokens an image takes."""
    size = {k: v for k, v in dict(getattr(image, "size", None) or {}).items() if v is not None}
    out: dict[str, Any] = {"size": size}
    for name in ("do_image_splitting", "max_image_size", "max_image_tiles"):
        value = getattr(image, name, None)
        if value is not None:
            out[name] = dict(value) if isinstance(value, dict) else value
    return out


def _qwen(image: Any, settings: ImageSettings) -> None:
    if settings.max_image_tokens is not None and settings.image_max_pixels is not None:
        raise UsageError(
            "--max-image-tokens and --image-max-pixels both cap the image",
            hint="give one of them (--max-image-tokens N is N x 784 pixels for Qwen)",
        )
    size = dict(image.size)
    high = settings.image_max_pixels or size["longest_edge"]
    if settings.max_image_tokens is not None:
        high = settings.max_image_tokens * QWEN_PIXELS_PER_TOKEN
    low = settings.image_min_pixels or min(size["shortest_edge"], high)
    if low > high:
        raise UsageError(
            f"--image-min-pixels {low} is above the cap of {high} pixels",
            hint="lower --image-min-pixels, or raise the cap",
        )
    image.size = {"shortest_edge": low, "longest_edge": high}


def _idefics3(processor: Any, image: Any, settings: ImageSettings) -> None:
    if settings.image_splitting is not None:
        image.do_image_splitting = settings.image_splitting
    if settings.max_image_tokens is None:
        if settings.image_longest_edge is not None:
            image.size = {"longest_edge": settings.image_longest_edge}
        return
    if settings.image_longest_edge is not None:
        raise UsageError(
            "--max-image-tokens and --image-longest-edge both cap the image",
            hint="give one of them",
        )
    per_tile = int(processor.image_seq_len)
    tile = int(image.max_image_size["longest_edge"])
    if settings.max_image_tokens < per_tile:
        raise UsageError(
            f"--max-image-tokens {settings.max_image_tokens}: one Idefics3 / SmolVLM tile takes "
            f"{per_tile} tokens",
            hint=f"give at least {per_tile}",
        )
    side = 1
    while ((side + 1) ** 2 + 1) * per_tile <= settings.max_image_tokens:
        side += 1
    image.size = {"longest_edge": side * tile}


def _mllama(image: Any, settings: ImageSettings, config: dict[str, Any], family: Any) -> None:
    if settings.max_image_tiles is not None:
        image.max_image_tiles = settings.max_image_tiles
    if settings.max_image_tokens is None:
        return
    patch = (config.get("vision_config") or {}).get("patch_size", 14)
    per_tile = (int(image.size["height"]) // int(patch)) ** 2 + 1
    tiles = min(int(image.max_image_tiles), settings.max_image_tokens // per_tile)
    if tiles < 1:
        raise UsageError(
            f"--max-image-tokens {settings.max_image_tokens}: one {family.title} tile takes "
            f"{per_tile} tokens",
            hint=f"give at least {per_tile}",
        )
    image.max_image_tiles = tiles


def _fixed(processor: Any, image: Any, cap: int, family: Any) -> None:
    size = dict(image.size)
    height = size.get("height") or size.get("shortest_edge")
    width = size.get("width") or size.get("shortest_edge")
    tokens = processor._get_num_multimodal_tokens(image_sizes=[(height, width)]).num_image_tokens
    if cap < tokens[0]:
        raise UsageError(
            f"--max-image-tokens {cap}: {family.title}'s resolution is fixed by its checkpoint "
            f"({height} x {width} pixels: {tokens[0]} tokens)",
            hint="its resolution comes with the checkpoint (PaliGemma: 224, 448 or 896 px); "
            "choose another checkpoint, or leave --max-image-tokens out",
        )


def image_token_stats(processor: Any, images: list[Any]) -> dict[str, Any] | None:
    """The tokens each image takes at the processor's settings, as the processor counts them
    (`_get_num_multimodal_tokens`: the image's own tokens and their markers), from each file's
    size alone: {"mean", "max", "images"}. None where the processor cannot say (Mllama, whose
    images are cross-attention states)."""
    from PIL import Image

    count = getattr(processor, "_get_num_multimodal_tokens", None)
    if count is None or not images:
        return None
    sizes = []
    for path in images:
        try:
            with Image.open(path) as image:
                sizes.append((image.height, image.width))
        except OSError:
            continue  # an unreadable image is the run's error to report, not this count's
    if not sizes:
        return None
    tokens = [int(n) for n in count(image_sizes=sizes).num_image_tokens]
    return {"mean": round(sum(tokens) / len(tokens), 2), "max": max(tokens), "images": len(tokens)}
