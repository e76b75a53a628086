"""Images that break things, made small: a decompression bomb costs a few bytes here."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def write_bomb_png(path: Path, side: int = 20_000) -> Path:
    """A valid PNG header declaring a side x side 1-bit image (Pillow judges its size before
    decoding anything, so the pixels need not be there)."""
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    pixels = _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + pixels + _chunk(b"IEND", b""))
    return path
