"""Sample images as small embedded PNGs, and character-level diffs as HTML."""

from __future__ import annotations

import base64
import difflib
import io
from html import escape
from pathlib import Path

THUMBNAIL = 320  # pixels on the long side
MAX_DIFF_CHARS = 4000


def image_data_uri(path: Path) -> str | None:
    """`path` downscaled to THUMBNAIL px as a data URI, or None if it cannot be read."""
    from vlmkit.images import UnreadableImage, open_image

    try:
        image = open_image(path)
    except UnreadableImage:
        return None
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def char_diff(reference: str, prediction: str) -> str:
    """HTML of the edit from reference to prediction: <del> what is missing, <ins> what is extra.

    Texts are cut at MAX_DIFF_CHARS (SequenceMatcher is quadratic in the worst case).
    """
    cut = len(reference) > MAX_DIFF_CHARS or len(prediction) > MAX_DIFF_CHARS
    a, b = reference[:MAX_DIFF_CHARS], prediction[:MAX_DIFF_CHARS]
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(escape(a[i1:i2]))
            continue
        if i2 > i1:
            out.append(f"<del>{escape(a[i1:i2])}</del>")
        if j2 > j1:
            out.append(f"<ins>{escape(b[j1:j2])}</ins>")
    if cut:
        out.append(f'<span class="cut">… (cut at {MAX_DIFF_CHARS} characters)</span>')
    return "".join(out)
