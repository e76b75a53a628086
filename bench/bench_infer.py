"""Batched inference: vlmkit's transformers backend at batch 16 against the notebook loop.

The baseline is what fine-tuning notebooks run: for each sample, open the image, format the
prompt, call the processor, `model.generate`, decode. vlmkit answers the same samples in
batches of 16 with left padding. Both run greedy in fp32 on the same tiny model (built offline,
`vlmkit tiny-model`) and the same synthetic images, each in its own process so peak memory is
its own; the predictions must be identical.

    python bench/bench_infer.py                          # idefics3, 64 samples, batch 16
    python bench/bench_infer.py --family paligemma --samples 128 --threads 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peak_memory import run_measured  # bench/ is on sys.path: scripts run from there

MAX_NEW_TOKENS = 16


def worker(mode: str, model: str, dataset: str, out: str, batch: int, threads: int) -> None:
    """One measured process: answer every sample, write predictions and timings to `out`."""
    import torch
    from PIL import Image

    from vlmkit.infer.backends.hf_transformers import TransformersBackend
    from vlmkit.infer.selection import select_samples
    from vlmkit.infer.settings import GenerationSettings, RunOptions
    from vlmkit.models.loading import load_model
    from vlmkit.models.options import LoadOptions
    from vlmkit.models.sources import resolve_source
    from vlmkit.prompts import format_prompt, images_argument

    torch.set_num_threads(threads)
    loaded = load_model(resolve_source(model, None), LoadOptions(device="cpu"))
    samples = select_samples(Path(dataset), None, RunOptions()).samples
    answers, tokens = [], 0
    started = time.perf_counter()
    if mode == "vlmkit":
        predictor = TransformersBackend(loaded, GenerationSettings(max_new_tokens=MAX_NEW_TOKENS))
        for start in range(0, len(samples), batch):
            for record in predictor.predict(samples[start : start + batch]):
                answers.append(record.prediction)
                tokens += record.new_tokens or 0
    else:
        processor, family, model_ = loaded.processor, loaded.family, loaded.model
        eos = {processor.tokenizer.eos_token_id, processor.tokenizer.pad_token_id}
        for sample in samples:
            image = Image.open(sample.image).convert("RGB")
            text = format_prompt(processor, family, sample.prompt)
            # What transformers' own apply_chat_template does: no second BOS after a template's.
            bos = processor.tokenizer.bos_token
            special = not (bos and text.startswith(bos))
            inputs = processor(
                text=[text],
                images=images_argument(family, [image]),
                return_tensors="pt",
                add_special_tokens=special,
            )
            inputs.pop("labels", None)
            with torch.inference_mode():
                output = model_.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
            new = output[0, inputs["input_ids"].shape[1] :].tolist()
            kept = next((new[:i] for i, t in enumerate(new) if t in eos), new)
            tokens += len(kept)
            answers.append(processor.tokenizer.decode(kept, skip_special_tokens=True).strip())
    elapsed = time.perf_counter() - started
    Path(out).write_text(json.dumps({"answers": answers, "tokens": tokens, "seconds": elapsed}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="idefics3")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worker", nargs=4, metavar=("MODE", "MODEL", "DATASET", "OUT"))
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker, args.batch_size, args.threads)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        vlmkit = [sys.executable, "-m", "vlmkit"]
        subprocess.run([*vlmkit, "tiny-model", root / "model", "--family", args.family],
                       check=True, capture_output=True)  # fmt: skip
        subprocess.run([*vlmkit, "synth", "circled-letter", "--n", str(args.samples),
                        "--test-fraction", "0", "--image-size", "128", "--max-length", "6",
                        "-o", root / "data"], check=True, capture_output=True)  # fmt: skip
        results = {}
        for mode in ("notebook", "vlmkit"):
            out = root / f"{mode}.json"
            command = [sys.executable, __file__, "--batch-size", str(args.batch_size),
                       "--threads", str(args.threads), "--worker", mode,
                       str(root / "model"), str(root / "data"), str(out)]  # fmt: skip
            _, peak, _ = run_measured(command)
            results[mode] = {**json.loads(out.read_text()), "peak_mb": peak}
    n = args.samples
    print(f"{args.family} tiny model, {n} samples, greedy fp32, {MAX_NEW_TOKENS} new tokens, "
          f"{args.threads} thread(s)")  # fmt: skip
    print(f"{'':24} {'images/s':>9} {'tokens/s':>9} {'peak MB':>8}")
    for mode, label in (("notebook", "notebook, one at a time"),
                        ("vlmkit", f"vlmkit, batch {args.batch_size}")):  # fmt: skip
        r = results[mode]
        print(f"{label:24} {n / r['seconds']:9.1f} {r['tokens'] / r['seconds']:9.1f} "
              f"{r['peak_mb']:8.0f}")  # fmt: skip
    ratio = results["notebook"]["seconds"] / results["vlmkit"]["seconds"]
    pairs = zip(results["notebook"]["answers"], results["vlmkit"]["answers"], strict=True)
    same = sum(a == b for a, b in pairs)
    print(f"ratio (throughput, vlmkit / notebook): {ratio:.1f}x")
    distinct = len(set(results["vlmkit"]["answers"]))
    print(f"identical predictions: {same} of {n} ({distinct} distinct answers)")


if __name__ == "__main__":
    main()
