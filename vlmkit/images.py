"""The one way vlmkit opens an image, for every command: decoded in full, or one clear reason.

Pillow raises a different exception for each way an image can be bad (a missing file, bytes
that are no image, a truncated stream, a decompression bomb: a 20000x20000 image is refused
before it takes gigabytes). Each becomes an `UnreadableImage` whose message is one line, so
every command can turn it into its own kind of report (a bad row, an error line, a refusal).
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any


class UnreadableImage(ValueError):
    """The image is missing or cannot be decoded; the message says which, in one line."""


def open_image(source: Path | str | bytes) -> Any:
    """A file or encoded bytes as a fully decoded `PIL.Image` (its `format` and `info` kept)."""
    from PIL import Image, UnidentifiedImageError

    where = "the image" if isinstance(source, bytes) else f"image {source}"
    stream: Any = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with Image.open(stream) as image:
            # Decoded in full: a truncated JPEG opens fine and fails only when read.
            image.load()
            return image
    except FileNotFoundError:
        raise UnreadableImage(f"{where} does not exist") from None
    except Image.DecompressionBombError as error:
        raise UnreadableImage(f"{where} is refused as a decompression bomb ({error})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        # Pillow names an in-memory stream by its repr (<_io.BytesIO object at 0x...>).
        reason = re.sub(r" ?<_io\.BytesIO object at 0x[0-9a-f]+>", "", str(error))
        raise UnreadableImage(f"{where} is not an image Pillow can read ({reason})") from None


def open_rgb(source: Path | str | bytes) -> Any:
    """`open_image` converted to RGB, what every model's processor takes."""
    image = open_image(source)
    return image if image.mode == "RGB" else image.convert("RGB")
