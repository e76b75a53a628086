"""Circled-letter generation: vlmkit against the paper's way of drawing, in one run.

The paper's generator (anguyen8/vision-llms-are-blind, src/CircledWord) draws each image with
matplotlib on a 10 x 2 inch figure at 1200 dpi (glyph bitmaps from FreeType via imshow, an
Ellipse patch), saves that 12000 x 2400 PNG, reopens it and shrinks it into 512 x 512. The
baseline below follows that method (written for this benchmark, not copied), single process,
on a sample of the grid; vlmkit draws the whole grid with 1 and with every worker.

Then memory: the peak resident memory of `vlmkit synth` processes should not grow with --n.

    python bench/bench_synth.py                 # paper grid + 24 baseline images + memory
    python bench/bench_synth.py --baseline 6    # fewer (slow) baseline images
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peak_memory import run_measured  # bench/ is on sys.path: scripts run from there

REPO = Path(__file__).resolve().parents[1]


def paper_style_image(word: str, font_path: Path, index: int, thickness: float, padding: int):
    """One image the paper's way: matplotlib at 1200 dpi, then shrunk to 512 x 512."""
    import freetype
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Ellipse
    from PIL import Image

    face = freetype.Face(str(font_path))
    face.set_pixel_sizes(0, 96)
    flags = freetype.FT_LOAD_RENDER | freetype.FT_LOAD_TARGET_NORMAL
    advances, heights = [], []
    for char in word:
        face.load_char(char, flags)
        advances.append(face.glyph.advance.x // 64)
        heights.append(face.glyph.bitmap.rows)
    width = sum(advances) + 2 * padding
    fig, ax = plt.subplots(figsize=(10, 2), dpi=1200)
    ax.set_axis_off()
    ax.set_xlim(0, width)
    ax.set_ylim(0, 200)
    pen, baseline = padding, 100 - max(heights) // 2
    for i, char in enumerate(word):
        face.load_char(char, flags)
        bitmap = face.glyph.bitmap
        left, top = pen + face.glyph.bitmap_left, baseline + face.glyph.bitmap_top
        if bitmap.rows and bitmap.width:
            pixels = np.array(bitmap.buffer, dtype=np.uint8).reshape(bitmap.rows, bitmap.pitch)
            ax.imshow(
                255 - pixels[:, : bitmap.width], cmap="gray", interpolation="bilinear",
                extent=(left, left + bitmap.width, top - bitmap.rows, top),
            )  # fmt: skip
        if i == index:
            centre = (left + bitmap.width / 2, top - bitmap.rows / 2)
            ax.add_patch(
                Ellipse(centre, 1.4 * advances[i], 1.4 * heights[i], fill=False,
                        edgecolor="red", linewidth=thickness)
            )  # fmt: skip
        pen += advances[i]
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=1200, bbox_inches="tight", pad_inches=0)
    plt.close(fig)
    big = Image.open(io.BytesIO(buffer.getvalue()))
    scale = min(512 / big.width, 512 / big.height)
    small = big.resize((int(big.width * scale), int(big.height * scale)))
    final = Image.new("RGB", (512, 512), "white")
    final.paste(small, ((512 - small.width) // 2, (512 - small.height) // 2))
    out = io.BytesIO()
    final.save(out, format="PNG")
    return out.getvalue()


def time_baseline(count: int) -> float:
    """Images per second of the paper-style baseline on the first `count` grid images."""
    from vlmkit.synth.circled_letter import from_preset, make_plan

    samples = list(make_plan(from_preset("paper")).samples())
    step = max(1, len(samples) // count)
    chosen = samples[::step][:count]
    start = time.perf_counter()
    for s in chosen:
        paper_style_image(s.word, s.font.path, s.index, s.thickness, int(s.padding))
    return len(chosen) / (time.perf_counter() - start)


def time_vlmkit(workers: int) -> tuple[float, int]:
    """Images per second of `vlmkit synth --preset paper`, whole command, fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "vlmkit", "synth", "circled-letter", "--preset", "paper",
             "--workers", str(workers), "-o", f"{tmp}/paper"],
            check=True, capture_output=True,
        )  # fmt: skip
        elapsed = time.perf_counter() - start
        count = len(Path(tmp, "paper", "metadata.jsonl").read_text().splitlines())
    return count / elapsed, count


def peak_memory_mb(n: int, workers: int) -> tuple[float, float]:
    """Peak resident memory (MB) of a `--n` run: the parent, and its largest worker."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "vlmkit", "synth", "circled-letter", "--n", str(n),
                   "--image-size", "256", "--workers", str(workers), "-o", f"{tmp}/d"]  # fmt: skip
        _, parent, worker = run_measured(command)
    return parent, worker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=int, default=24, help="paper-style images to time")
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    print(f"machine: {cpus} CPUs; paper grid at 512x512")
    one, count = time_vlmkit(1)
    every, _ = time_vlmkit(cpus)
    print(f"vlmkit synth --preset paper, 1 worker : {count} images, {one:7.1f} images/s")
    print(f"vlmkit synth --preset paper, {cpus} workers: {count} images, {every:7.1f} images/s")
    for n in (1000, 4000, 16000):
        parent, worker = peak_memory_mb(n, cpus)
        print(f"peak RSS, --n {n:>5}: parent {parent:5.1f} MB, largest worker {worker:5.1f} MB")
    baseline = time_baseline(args.baseline)
    print(f"paper-style matplotlib @1200 dpi, 1 process: {baseline:7.2f} images/s "
          f"({args.baseline} images)")  # fmt: skip
    print(f"ratio (1 worker vs 1 process): {one / baseline:6.0f}x")
    print(f"ratio ({cpus} workers vs paper-style on {cpus} processes, ideal): "
          f"{every / (baseline * cpus):6.0f}x")  # fmt: skip


if __name__ == "__main__":
    main()
