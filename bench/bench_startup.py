"""`vlmkit score` on two 10-line files, start to finish, vs a bare `python -c pass`.

The requirement is well under a second for the whole command. The bare interpreter start is
printed beside it so the figure can be read on a slower or faster machine.

    .venv/bin/python bench/bench_startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    vlmkit = str(Path(sys.executable).with_name("vlmkit"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with (folder / "refs.jsonl").open("w") as refs, (folder / "preds.jsonl").open("w") as out:
            for i in range(10):
                refs.write(json.dumps({"id": i, "target": f"total {i}.000 cash", "task": "ocr"}))
                out.write(json.dumps({"id": i, "prediction": f"total {i}.00 cash"}))
                refs.write("\n")
                out.write("\n")
        score = [vlmkit, "score", str(folder / "preds.jsonl"), str(folder / "refs.jsonl")]
        bare = timed([sys.executable, "-c", "pass"], args.repeat)
        helped = timed([vlmkit, "--help"], args.repeat)
        scored = timed(score, args.repeat)
    print(f"median of {args.repeat} runs")
    print(f"python -c pass:                       {bare:.3f} s")
    print(f"vlmkit --help:                        {helped:.3f} s")
    print(f"vlmkit score, 10 lines, ocr defaults: {scored:.3f} s (requirement: well under 1 s)")


if __name__ == "__main__":
    main()
