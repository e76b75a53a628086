"""Images into the output folder: copied byte for byte, or (with --max-side) downsized."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

from PIL import Image

from vlmkit.convert.base import ImageBytes, ImageFile, ImageRef
from vlmkit.images import UnreadableImage, open_image

SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "MPO": ".jpg", "WEBP": ".webp", "TIFF": ".tif",
            "BMP": ".bmp", "GIF": ".gif"}  # fmt: skip
SAVE_OPTIONS: dict[str, dict[str, Any]] = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}}


class ImageError(ValueError):
    """The image is missing or cannot be read (a bad row)."""


class SplitImages:
    """The images of one split folder, each distinct image written once: rows that share an
    image (DocVQA asks several questions of each page) name the same file."""

    def __init__(self, folder: Path, max_side: int | None) -> None:
        self.folder = folder
        self.max_side = max_side
        self._written: dict[str, tuple[str, dict[str, Any]]] = {}

    def write(self, image: ImageRef, stem: str) -> tuple[str, dict[str, Any]]:
        """The relative name and meta of `image`, written as `images/<stem>.<ext>` the first
        time its bytes are seen."""
        data = _read(image)
        digest = hashlib.sha256(data).hexdigest()
        if digest not in self._written:
            self._written[digest] = write_image(data, digest, self.folder, stem, self.max_side,
                                                image)  # fmt: skip
        name, meta = self._written[digest]
        return name, dict(meta)


def write_image(
    data: bytes, digest: str, folder: Path, stem: str, max_side: int | None, image: ImageRef
) -> tuple[str, dict[str, Any]]:
    """Write the bytes of `image` (`digest`: their SHA-256) as `folder/images/<stem>.<ext>`;
    return its relative name and its meta."""
    try:
        # Decoded in full: verify() checks little beyond a PNG's checksums, and a truncated
        # JPEG would pass it and only fail in a training run.
        decoded = open_image(data)
    except UnreadableImage as error:
        raise ImageError(str(error).removeprefix("the image is ")) from None
    suffix = SUFFIXES.get(decoded.format or "", _original_suffix(image))
    meta: dict[str, Any] = {"image_sha256": digest}
    if max_side is not None and max(decoded.size) > max_side:
        meta.update(original_size=list(decoded.size), max_side=max_side)
        data = _downsized(decoded, max_side)
    name = f"images/{stem}{suffix}"
    (folder / name).write_bytes(data)
    return name, meta


def _read(image: ImageRef) -> bytes:
    if isinstance(image, ImageBytes):
        return image.data
    assert isinstance(image, ImageFile)
    try:
        return image.path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"image file {image.path} does not exist") from None
    except OSError as error:
        raise ImageError(f"cannot read image file {image.path} ({error.strerror})") from None


def _original_suffix(image: ImageRef) -> str:
    name = image.path.name if isinstance(image, ImageFile) else (image.name or "")
    return Path(name).suffix.lower() or ".img"


def _downsized(original: Image.Image, max_side: int) -> bytes:
    """The decoded image scaled so its longer side is `max_side`, in its own format."""
    scale = max_side / max(original.size)
    size = (max(1, round(original.width * scale)), max(1, round(original.height * scale)))
    small = original.resize(size, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    save_format = "JPEG" if original.format == "MPO" else original.format or "PNG"
    options = dict(SAVE_OPTIONS.get(save_format, {}))
    # Keep what says how to show the pixels: orientation (EXIF) and colour profile.
    for key in ("exif", "icc_profile"):
        if original.info.get(key) and save_format in ("JPEG", "PNG", "WEBP", "TIFF"):
            options[key] = original.info[key]
    small.save(out, format=save_format, **options)
    return out.getvalue()
