"""`vlmkit finetune --dry-run`: its time against an epoch's data loading, and its memory estimate
against the measured peak.

1. Time: `--dry-run` on 1,000 CORD-sized samples (the CORD v2 receipts of examples/, repeated,
   their JSON targets) against what a user otherwise learns the token counts from, an epoch
   of the trainer's data loading (a `DataLoader` over the same samples with vlmkit's training
   collator, batch 4). Both in this process, the processor loaded once before either.
2. Memory: the estimate for a small random Idefics3 (8 layers of 512, a 32,000-token
   vocabulary; the processor's tiles raised so that receipts take ~1,000 tokens) against the
   peak resident memory of the run itself, two training steps of batch 2 in a process of its
   own, above that process's baseline (`measure_training_peak.py`), glibc told to map every
   large block so that the resident set follows the tensors alive. That is a CPU proxy: no
   GPU was lent to measure `torch.cuda.max_memory_allocated`.
3. Tensors: the real step of the whole model (vision tower, LoRA, TRL's fused head), and a
   real `generate` of `infer --dry-run`'s fullest batch, under the tracker the estimates use:
   what PyTorch's tensors hold, the process around them aside.

    python bench/bench_dry_run.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORD = REPO / "examples" / "cord-v2-sample"
SAMPLES = 1000
LONGEST_EDGE = 384
"""Idefics3's resize target for the receipts: tiles of 32 pixels, ~1,000 tokens a receipt."""


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = cord_samples(root / "cord", SAMPLES)
        model = small_idefics3(root)
        timing(data, model, root)
        estimates(root, model)
        tensors_of_a_real_step(root, model)
        tensors_of_a_real_generation(root, model)


def cord_samples(folder: Path, count: int) -> Path:
    """`count` training samples cycling over the CORD receipts (ids made distinct)."""
    shutil.copytree(CORD / "images", folder / "images")
    records = [json.loads(line) for line in (CORD / "metadata.jsonl").read_text().splitlines()]
    with (folder / "metadata.jsonl").open("w") as lines:
        for index in range(count):
            record = dict(records[index % len(records)], id=f"cord-{index:04d}")
            lines.write(json.dumps(record) + "\n")
    return folder


def small_idefics3(root: Path) -> Path:
    """A random Idefics3 big enough for its memory to stand out of a process's noise."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    tiny = root / "tiny"
    subprocess.run([sys.executable, "-m", "vlmkit", "tiny-model", tiny, "--family", "idefics3"],
                   check=True, capture_output=True)  # fmt: skip
    config = AutoConfig.from_pretrained(tiny)
    config.text_config.update({"hidden_size": 512, "intermediate_size": 1536,
                               "num_hidden_layers": 8, "num_attention_heads": 8,
                               "num_key_value_heads": 4, "vocab_size": 32000})  # fmt: skip
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_config(config)
    small = root / "small"
    model.save_pretrained(small)
    for path in tiny.iterdir():
        if not path.name.startswith(("model", "config")):
            shutil.copy(path, small / path.name)
    return small


def timing(data: Path, model: Path, root: Path) -> None:
    from torch.utils.data import DataLoader

    from vlmkit.finetune.dry_run import dry_run
    from vlmkit.finetune.objectives import objective_named
    from vlmkit.finetune.session import FinetuneRequest, check
    from vlmkit.finetune.settings import settings_from
    from vlmkit.models.loading import load_parts

    settings = settings_from(None, {"image_longest_edge": LONGEST_EDGE, "batch_size": 4})
    request = FinetuneRequest(train=data, model=str(model), out=root / "run", settings=settings)
    checked = check(request)
    parts = load_parts(checked.source, _options(settings))
    objective = objective_named("sft")
    collator = objective.collator(parts.processor, parts.family, parts.context_length)
    started = time.perf_counter()
    report = dry_run(request)
    dry = time.perf_counter() - started
    started = time.perf_counter()
    loader = DataLoader(objective.examples(checked.train), batch_size=4, collate_fn=collator)
    batches = sum(1 for _ in loader)
    epoch = time.perf_counter() - started
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vlmkit", "finetune", str(data), "--model", str(model),
                    "-o", str(root / "run"), "--image-longest-edge", str(LONGEST_EDGE),
                    "--dry-run"], check=True, capture_output=True)  # fmt: skip
    process = time.perf_counter() - started
    stats = report.stats()["total"]
    print(f"{SAMPLES:,} CORD receipts, tokens per sample {stats.minimum:,}-{stats.maximum:,} "
          f"(median {stats.median:,g}); x86_64, {os.cpu_count()} cores")  # fmt: skip
    print(f"--dry-run (in process)        {dry:7.2f} s")
    print(f"an epoch's data loading       {epoch:7.2f} s ({batches} batches of 4)")
    print(f"--dry-run / epoch's loading:  {dry / epoch:.2f}x")
    print(f"--dry-run, whole process      {process:7.2f} s")


def estimates(root: Path, model: Path) -> None:
    from vlmkit.finetune.dry_run import dry_run
    from vlmkit.finetune.session import FinetuneRequest
    from vlmkit.finetune.settings import settings_from

    data = cord_samples(root / "cord-small", 4)
    import torch

    measure = ("torch.cuda.max_memory_allocated, bf16" if torch.cuda.is_available() else
               "CPU proxy: peak RSS above the run's baseline, fp32")  # fmt: skip
    print(f"\nestimate vs measured peak ({measure}), 2 steps")
    print(f"{'run':34} {'tokens':>9} {'estimate MB':>12} {'measured MB':>12} {'error':>7}")
    # glibc keeps freed blocks for reuse; mapping every large block makes the resident set
    # follow the tensors alive, as the CUDA allocator's max_memory_allocated does.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    for name, flags in (
        ("lora, batch 1", {"batch_size": 1}),
        ("lora, batch 2", {}),
        ("lora, batch 2, checkpointing", {"gradient_checkpointing": True}),
        ("lora r 64, batch 2", {"lora_r": 64}),
        ("qlora, batch 2", {"method": "qlora"}),
    ):
        flags = {"image_longest_edge": LONGEST_EDGE, "batch_size": 2, "max_steps": 2, **flags}
        out = root / f"run-{name.replace(' ', '').replace(',', '-')}"
        request = FinetuneRequest(train=data, model=str(model), out=out,
                                  settings=settings_from(None, flags))  # fmt: skip
        report = dry_run(request)
        estimate = report.memory.total
        result = subprocess.run(
            [sys.executable, str(Path(__file__).parent / "measure_training_peak.py"), str(data),
             str(model), str(out), json.dumps(flags)],
            check=True, capture_output=True, text=True, env=env,
        )  # fmt: skip
        found = json.loads(result.stdout.strip().splitlines()[-1])
        # On a GPU the allocator's own count, which the estimate is meant to match.
        measured = found.get("cuda_max_allocated", found["measured"])
        error = (estimate - measured) / measured
        shape = f"{report.rows} x {report.length:,}"
        print(f"{name:34} {shape:>9} {estimate / 2**20:12.0f} {measured / 2**20:12.0f} "
              f"{error:+7.1%}")  # fmt: skip


def tensors_of_a_real_step(root: Path, model_folder: Path) -> None:
    """The real step (the whole model: vision tower, LoRA, TRL's fused head) under the tracker
    the estimate uses: what PyTorch's tensors hold, without the process around them."""
    from peft import get_peft_model
    from transformers import AutoModelForImageTextToText
    from trl.trainer.utils import add_fused_lm_head

    from vlmkit.finetune.data import read_training_data
    from vlmkit.finetune.dry_run import dry_run
    from vlmkit.finetune.objectives import objective_named
    from vlmkit.finetune.session import FinetuneRequest
    from vlmkit.finetune.settings import settings_from
    from vlmkit.finetune.train import lora_config
    from vlmkit.models.loading import load_parts
    from vlmkit.models.meta_trace import LiveTensors
    from vlmkit.models.sources import resolve_source

    data = root / "cord-small"
    settings = settings_from(None, {"image_longest_edge": LONGEST_EDGE, "batch_size": 1})
    report = dry_run(FinetuneRequest(train=data, model=str(model_folder), out=root / "t",
                                     settings=settings))  # fmt: skip
    parts = load_parts(resolve_source(str(model_folder), None), _options(settings))
    sft = objective_named("sft")
    collator = sft.collator(parts.processor, parts.family, None)
    examples = sft.examples(read_training_data(data, None, flag="TRAIN_DATASET"))
    batch = collator([max(examples, key=lambda e: collator.lengths(e).total)])
    model = AutoModelForImageTextToText.from_pretrained(model_folder)
    add_fused_lm_head(model, outputs=sft.head_outputs)
    model = get_peft_model(model, lora_config(model, settings)).train()
    with LiveTensors([*model.parameters(), *model.buffers(), *batch.values()]) as live:
        output = model(**batch, fused_lm_head=True)
        loss = -output.log_probs.sum() / output.label_mask.sum()
        held = live.now
        loss.backward()
    estimate = report.memory
    traced = estimate.activations + estimate.working + estimate.gradients
    print("\nthe real step's tensors (whole model) under the estimate's tracker, batch 1, fp32")
    print(f"held at the forward's end  estimate {estimate.activations / 2**20:8.1f} MB, "
          f"real {held / 2**20:8.1f} MB")  # fmt: skip
    print(f"peak of the step           estimate {traced / 2**20:8.1f} MB, "
          f"real {live.peak / 2**20:8.1f} MB")  # fmt: skip


def tensors_of_a_real_generation(root: Path, model_folder: Path, new_tokens: int = 32) -> None:
    """`infer --dry-run`'s estimate against the tensors of a real `generate` of its fullest
    batch (the two longest receipts, every new token generated), under the same tracker."""
    import torch

    from vlmkit.images import open_rgb
    from vlmkit.infer.backends.hf_transformers import encode_prompts
    from vlmkit.infer.dry_run import dry_run
    from vlmkit.infer.session import InferRequest
    from vlmkit.infer.settings import GenerationSettings, RunOptions
    from vlmkit.models.loading import load_model
    from vlmkit.models.meta_trace import LiveTensors
    from vlmkit.models.options import LoadOptions
    from vlmkit.models.resolution import ImageSettings
    from vlmkit.models.sources import resolve_source
    from vlmkit.prompts import format_prompt
    from vlmkit.records import read_dataset

    data = root / "cord-small"
    load = LoadOptions(image=ImageSettings(image_longest_edge=LONGEST_EDGE))
    request = InferRequest(dataset=data, out=root / "p.jsonl", model=str(model_folder),
                           adapter=None, split=None, load=load,
                           generation=GenerationSettings(max_new_tokens=new_tokens),
                           options=RunOptions(batch_size=2))  # fmt: skip
    estimate = dry_run(request).memory
    loaded = load_model(resolve_source(str(model_folder), None), load)
    records = list(read_dataset(data))
    prompts = [format_prompt(loaded.processor, loaded.family, r.prompt) for r in records]
    images = [open_rgb(data / r.file_name) for r in records]
    lengths = [int(encode_prompts(loaded.processor, loaded.family, [p], [i])["attention_mask"]
               .sum()) for p, i in zip(prompts, images, strict=True)]  # fmt: skip
    longest = sorted(range(len(records)), key=lambda i: -lengths[i])[:2]
    inputs = encode_prompts(loaded.processor, loaded.family, [prompts[i] for i in longest],
                            [images[i] for i in longest])  # fmt: skip
    existing = [*loaded.model.parameters(), *loaded.model.buffers(), *inputs.values()]
    with torch.inference_mode(), LiveTensors(existing) as live:
        loaded.model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                              do_sample=False)  # fmt: skip
    traced = estimate.kv_cache + estimate.working
    print(f"\ninfer: a real generate of 2 receipts + {new_tokens} tokens under the same tracker")
    print(f"KV cache and working memory  estimate {traced / 2**20:8.1f} MB, "
          f"real peak {live.peak / 2**20:8.1f} MB")  # fmt: skip


def _options(settings):  # type: ignore[no-untyped-def]
    from vlmkit.finetune.train import load_options
    from vlmkit.models.loading import choose_device, choose_dtype

    device = choose_device(settings.device)
    return load_options(settings, device, choose_dtype(settings.dtype, device))


if __name__ == "__main__":
    main()
