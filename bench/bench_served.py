"""A served model through `vlmkit infer --backend openai`: throughput at several concurrencies,
and vlmkit's client overhead against a bare `openai` SDK loop sending the same requests.

The server is `transformers serve` on 127.0.0.1 with a tiny Idefics3 (CPU): what is measured
is the client side, the server being the same for both. The bare loop is what a user would
otherwise write: read metadata.jsonl, send each image as a base64 PNG data URL with its
prompt through `AsyncOpenAI`, `--concurrency` requests at a time, write the answers as JSONL.
Both are whole processes, timed from start to finish, and give the same answers.

    python bench/bench_served.py                    # 256 samples
    python bench/bench_served.py --n 1024
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from served_model import Server

MAX_NEW_TOKENS = 8


def bare_loop(dataset: Path, url: str, model: str, out: Path, concurrency: int) -> None:
    """The plain SDK loop (run in its own process)."""
    from openai import AsyncOpenAI

    rows = [json.loads(line) for line in (dataset / "metadata.jsonl").read_text().splitlines()]

    async def main() -> list[dict]:
        client = AsyncOpenAI(base_url=url, api_key="none")
        slots = asyncio.Semaphore(concurrency)

        async def one(row: dict) -> dict:
            data = base64.b64encode((dataset / row["file_name"]).read_bytes()).decode()
            content = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
                       {"type": "text", "text": row["prompt"]}]  # fmt: skip
            async with slots:
                reply = await client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": content}],
                    max_tokens=MAX_NEW_TOKENS, temperature=0.0, seed=0,
                )  # fmt: skip
            return {"id": row["id"], "prediction": (reply.choices[0].message.content or "").strip()}

        return await asyncio.gather(*(one(row) for row in rows))

    answers = asyncio.run(main())
    out.write_text("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in answers))


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def answers(path: Path) -> list[tuple[str, str]]:
    return [(r["id"], r["prediction"]) for r in map(json.loads, path.read_text().splitlines())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--bare", nargs=5, metavar=("DATASET", "URL", "MODEL", "OUT", "C"))
    args = parser.parse_args()
    if args.bare:
        dataset, url, model, out, concurrency = args.bare
        bare_loop(Path(dataset), url, model, Path(out), int(concurrency))
        return
    vlmkit = [sys.executable, "-m", "vlmkit"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model, data = root / "tiny", root / "letters"
        subprocess.run([*vlmkit, "tiny-model", str(model), "--family", "idefics3"], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        subprocess.run([*vlmkit, "synth", "circled-letter", "--n", str(args.n),
                        "--test-fraction", "0", "--image-size", "128", "--max-length", "6",
                        "--seed", "1", "--workers", "1", "-o", str(data)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        server = Server(model, root).start()
        try:
            print(f"{args.n} samples, tiny idefics3 served by transformers serve (CPU), "
                  f"{MAX_NEW_TOKENS} new tokens")  # fmt: skip
            for concurrency in (1, 4, 16):
                out = root / f"vlmkit-{concurrency}.jsonl"
                seconds = timed([*vlmkit, "infer", str(data), "--backend", "openai",
                                 "--endpoint", server.url, "--model", str(model), "-o", str(out),
                                 "--max-new-tokens", str(MAX_NEW_TOKENS), "--concurrency",
                                 str(concurrency)])  # fmt: skip
                bare = root / f"bare-{concurrency}.jsonl"
                plain = timed([sys.executable, __file__, "--bare", str(data), server.url,
                               str(model), str(bare), str(concurrency)])  # fmt: skip
                same = "same answers" if answers(out) == answers(bare) else "ANSWERS DIFFER"
                print(f"concurrency {concurrency:2d}: vlmkit {seconds:6.2f} s "
                      f"({args.n / seconds:6.1f} samples/s), bare SDK loop {plain:6.2f} s; "
                      f"ratio {seconds / plain:.2f}x (requirement: <= 1.10x), {same}")  # fmt: skip
        finally:
            server.stop()


if __name__ == "__main__":
    main()
