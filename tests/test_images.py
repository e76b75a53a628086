"""`vlmkit.images`: every way an image can be bad is one clear line, for every command."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from image_helpers import write_bomb_png
from PIL import Image

from vlmkit.images import UnreadableImage, open_image, open_rgb


def _png(mode: str = "RGBA") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (40, 30), "red").save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_good_image_is_decoded_whole_with_its_format(tmp_path: Path):
    (tmp_path / "a.png").write_bytes(_png())
    image = open_image(tmp_path / "a.png")
    assert image.format == "PNG" and image.size == (40, 30)
    assert open_rgb(tmp_path / "a.png").mode == "RGB"
    assert open_rgb(_png("L")).getpixel((0, 0)) == (76, 76, 76)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "does not exist"),
        (lambda p: (p.write_bytes(b"not an image"), p)[1], "is not an image Pillow can read"),
        (lambda p: (p.write_bytes(_png()[:60]), p)[1], "is not an image Pillow can read"),
        (write_bomb_png, "is refused as a decompression bomb"),
    ],
)
def test_each_bad_image_is_one_line(tmp_path: Path, make, message):
    path = make(tmp_path / "bad.png")
    with pytest.raises(UnreadableImage) as caught:
        open_rgb(path)
    assert message in str(caught.value) and str(path) in str(caught.value)
    assert "\n" not in str(caught.value)
