"""`vlmkit infer DATASET --model M --out preds.jsonl`: predictions, batched and resumable."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from vlmkit.cli import console
from vlmkit.cli.options import (
    ImageLongestEdge,
    ImageMaxPixels,
    ImageMinPixels,
    ImageSplitting,
    MaxImageTiles,
    MaxImageTokens,
)
from vlmkit.errors import VlmkitError
from vlmkit.infer.backends import BACKENDS

LOADING = "Loading"
OUTPUT = "Output"
GENERATION = "Generation"
SAMPLES = "Samples"
SERVED = "Served models (--backend openai)"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class DType(str, Enum):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


# A closed choice listed by --help; the registry is a literal, so reading it here is free.
Backend = Enum("Backend", {name: name for name in BACKENDS}, type=str)  # type: ignore[misc]
DEFAULT_BACKEND = Backend("transformers")


def infer_command(
    dataset: Annotated[
        Path,
        typer.Argument(
            metavar="DATASET", help="Dataset folder (metadata.jsonl + images), or one with splits."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Predictions JSONL to write; its run goes in OUT's .run.json.",
            rich_help_panel=OUTPUT,
        ),
    ],
    model: Annotated[
        str | None,
        typer.Option(
            help="Model folder or hub id. Optional with --adapter: its base model is used.",
            rich_help_panel=LOADING,
        ),
    ] = None,
    adapter: Annotated[
        Path | None,
        typer.Option(
            help="LoRA adapter folder to apply (vlmkit finetune's --out).", rich_help_panel=LOADING
        ),
    ] = None,
    device: Annotated[
        Device,
        typer.Option(help="auto: CUDA when a GPU is visible, else CPU.", rich_help_panel=LOADING),
    ] = Device.auto,
    dtype: Annotated[
        DType,
        typer.Option(
            help="auto: bf16 on CUDA, fp32 on CPU (bf16 is far slower there).",
            rich_help_panel=LOADING,
        ),
    ] = DType.auto,
    max_image_tokens: MaxImageTokens = None,
    image_max_pixels: ImageMaxPixels = None,
    image_min_pixels: ImageMinPixels = None,
    image_longest_edge: ImageLongestEdge = None,
    image_splitting: ImageSplitting = None,
    max_image_tiles: MaxImageTiles = None,
    load_in_4bit: Annotated[
        bool,
        typer.Option(
            "--load-in-4bit",
            help="Quantise weights to 4-bit NF4 (bitsandbytes).",
            rich_help_panel=LOADING,
        ),
    ] = False,
    trust_remote_code: Annotated[
        bool,
        typer.Option(
            "--trust-remote-code",
            help="Run Python code shipped with the model (off: only its weights and configs load).",
            rich_help_panel=LOADING,
        ),
    ] = False,
    backend: Annotated[
        Backend,  # type: ignore[valid-type]
        typer.Option(
            help="vllm: faster generation on a CUDA GPU, when vLLM is installed; openai: a "
            "served or hosted model (vLLM, SGLang, transformers serve, OpenAI...) at --endpoint, "
            "--model naming it there.",
            rich_help_panel=LOADING,
        ),
    ] = DEFAULT_BACKEND,
    max_model_len: Annotated[
        int | None,
        typer.Option(
            help="vllm: the context it reserves memory for (prompt and answer).",
            show_default="the model's",
            rich_help_panel=LOADING,
        ),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(
            help="The server's OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1.",
            rich_help_panel=SERVED,
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option(help="Requests in flight at once.", rich_help_panel=SERVED)
    ] = 8,
    timeout: Annotated[
        float,
        typer.Option(
            help="Seconds a request may take before it is retried.", rich_help_panel=SERVED
        ),
    ] = 120.0,
    max_retries: Annotated[
        int,
        typer.Option(
            help="Retries after a 429, a 5xx, a timeout or a lost connection (back-off "
            "with jitter, Retry-After honoured).",
            rich_help_panel=SERVED,
        ),
    ] = 5,
    rpm: Annotated[
        float | None,
        typer.Option(
            help="Most requests started per minute (a rate limit).",
            show_default="no limit",
            rich_help_panel=SERVED,
        ),
    ] = None,
    api_key_env: Annotated[
        str,
        typer.Option(
            help="The environment variable holding the API key (never written anywhere).",
            rich_help_panel=SERVED,
        ),
    ] = "OPENAI_API_KEY",
    image_detail: Annotated[
        str | None,
        typer.Option(
            help="The image `detail` field: auto, low or high.",
            show_default="not sent: the server's full default",
            rich_help_panel=SERVED,
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            help="Split subfolder of DATASET to answer (e.g. test).", rich_help_panel=SAMPLES
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(help="Only the first N samples of the dataset.", rich_help_panel=SAMPLES),
    ] = None,
    shard: Annotated[
        str,
        typer.Option(
            help="K/N: this run's share (every N-th sample from the K-th), for N parallel runs "
            "whose outputs concatenate.",
            rich_help_panel=SAMPLES,
        ),
    ] = "1/1",
    prompt: Annotated[
        str | None,
        typer.Option(
            help="Ask every sample this instead of its record's prompt.", rich_help_panel=SAMPLES
        ),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            help="Samples generated together (prompts padded on the left).",
            rich_help_panel=GENERATION,
        ),
    ] = 8,
    max_new_tokens: Annotated[
        int, typer.Option(help="Most tokens generated per answer.", rich_help_panel=GENERATION)
    ] = 256,
    sample: Annotated[
        bool,
        typer.Option(
            "--sample",
            help="Sample answers instead of decoding greedily (greedy answers repeat exactly).",
            rich_help_panel=GENERATION,
        ),
    ] = False,
    temperature: Annotated[
        float,
        typer.Option(help="Sampling temperature (with --sample).", rich_help_panel=GENERATION),
    ] = 1.0,
    top_p: Annotated[
        float,
        typer.Option(help="Nucleus sampling mass (with --sample).", rich_help_panel=GENERATION),
    ] = 1.0,
    num_beams: Annotated[
        int, typer.Option(help="Beam search width (1: greedy).", rich_help_panel=GENERATION)
    ] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the sampler.", rich_help_panel=GENERATION)] = 0,
    retry_errors: Annotated[
        bool,
        typer.Option(
            "--retry-errors",
            help="Answer again the samples recorded with an error.",
            rich_help_panel=OUTPUT,
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Start again instead of resuming (OUT is replaced when the new run finishes).",
            rich_help_panel=OUTPUT,
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Check the run, encode every prompt and estimate its peak memory from the "
            "processor and config alone: no weight loads, nothing is written.",
        ),
    ] = False,
) -> None:
    """Answer every sample of a dataset with a model (and adapter): one JSONL line per sample.

    Greedy decoding unless `--sample`. Lines are written as they come and flushed to disk, to
    OUT.partial until the run is whole, then OUT. Rerunning the same command resumes where a
    stopped run left off (Ctrl-C finishes the batch in flight; a killed run loses at most its
    last batch). A sample that fails (unreadable image, too long) is recorded with its error
    and the run goes on; `--retry-errors` answers those again. The model, adapter, prompt
    format, generation settings and library versions go in OUT's sidecar `.run.json`.

    Examples:

        vlmkit infer data/letters/test --model google/paligemma2-3b-pt-224 -o base.jsonl
        vlmkit infer data/letters/test --adapter runs/lora -o tuned.jsonl --batch-size 16
        vlmkit infer data/cord --split test --model tiny/ -o preds.jsonl --limit 20
        vlmkit infer data/cord --split test --model M -o part2.jsonl --shard 2/4
        vlmkit infer data/cord --split test --model M -o p.jsonl --batch-size 32 --dry-run
        vlmkit infer data/cord --split test --backend openai --endpoint http://127.0.0.1:8000/v1 \
            --model runs/q/merged -o served.jsonl --concurrency 16
        vlmkit infer data/cord --split test --backend openai \
            --endpoint https://api.openai.com/v1 --model gpt-4o -o gpt4o.jsonl --rpm 500
    """
    from vlmkit.infer.session import InferRequest, execute, plan
    from vlmkit.infer.settings import GenerationSettings, RemoteOptions, RunOptions, Shard
    from vlmkit.models.options import LoadOptions
    from vlmkit.models.resolution import ImageSettings

    request = InferRequest(
        dataset=dataset,
        out=out,
        model=model,
        adapter=adapter,
        split=split,
        load=LoadOptions(
            device=device.value,
            dtype=dtype.value,
            load_in_4bit=load_in_4bit,
            trust_remote_code=trust_remote_code,
            image=ImageSettings(
                max_image_tokens=max_image_tokens, image_max_pixels=image_max_pixels,
                image_min_pixels=image_min_pixels, image_longest_edge=image_longest_edge,
                image_splitting=image_splitting, max_image_tiles=max_image_tiles,
            ),
        ),
        generation=GenerationSettings(
            max_new_tokens=max_new_tokens,
            do_sample=sample,
            temperature=temperature,
            top_p=top_p,
            num_beams=num_beams,
            seed=seed,
        ),
        options=RunOptions(
            batch_size=batch_size,
            limit=limit,
            prompt=prompt,
            shard=Shard.parse(shard),
            retry_errors=retry_errors,
            overwrite=overwrite,
        ),
        backend=backend.value,
        max_model_len=max_model_len,
        remote=RemoteOptions(
            endpoint=endpoint, concurrency=concurrency, timeout_s=timeout,
            max_retries=max_retries, rpm=rpm, api_key_env=api_key_env,
            image_detail=image_detail.lower() if image_detail else None,
        ),
    )  # fmt: skip
    from vlmkit.cli.progress import progress_bar

    if dry_run:
        from vlmkit.cli.dry_run import print_inference_estimate
        from vlmkit.infer.dry_run import dry_run as estimate

        with progress_bar("Encoding", None, "prompts") as advance:
            report = estimate(request, advance)
        print_inference_estimate(report, str(dataset))
        return

    def loaded(described: dict[str, Any]) -> None:
        console.note(_loaded_line(described))
        interruption.answering = True

    # Ctrl-C is handled from the checks on: the run holds OUT's lock from then.
    with (
        _interruptible() as interruption,
        console.interrupted_means(lambda: _kept(out, interruption)),
    ):
        work = plan(request)
        counts = work.counts
        for note in work.notes:
            console.note(note)
        for warning in work.warnings:
            console.warn(warning)
        if work.finished:
            work.journal.release()
            console.note(f"{out}: all {counts.selected:,} samples already answered; nothing to do.")
            errors = sum("error" in line for line in work.done.values())
            if errors:
                console.note(f"{errors:,} of them hold an error: --retry-errors asks those again.")
            return
        if counts.already_done:
            console.note(
                f"Resuming {work.journal.existing_file()}: {counts.already_done:,} of "
                f"{counts.selected:,} samples already answered."
            )
        with progress_bar("Answering", counts.todo, "samples") as advance:
            counts = execute(
                work, advance=advance, stop_requested=interruption.requested, on_loaded=loaded
            )
    _report(out, counts, work.journal.sidecar)


def _loaded_line(described: dict[str, Any]) -> str:
    if described.get("endpoint"):
        return (f"Asking {described['model']} at {described['endpoint']}, with the API key "
                f"from {described['api_key']}")  # fmt: skip
    adapter = f" + {described['adapter']}" if described.get("adapter") else ""
    return (
        f"Loaded {described['model']}{adapter} ({described['family']}, {described['dtype']} "
        f"on {described['device']})"
    )


def _report(out: Path, counts: Any, sidecar: Path) -> None:
    rate = counts.answered / counts.generation_s if counts.generation_s else 0.0
    if counts.interrupted:
        console.stderr.print(
            f"Interrupted: {counts.already_done + counts.answered:,} of {counts.selected:,} "
            f"samples answered, saved in {out}.partial."
        )
        console.note("Rerun the same command to resume.")
        raise typer.Exit(130)
    console.stdout.print(
        f"Wrote {out}: {counts.selected:,} samples ({counts.answered:,} answered now at "
        f"{rate:.2f} samples/s, {counts.already_done:,} earlier), "
        f"{counts.errors_in_file:,} with an error. Run recorded in {sidecar}."
    )
    if counts.errors_in_file:
        console.warn(
            f"{counts.errors_in_file:,} samples failed "
            f"(first: {counts.first_error or 'in an earlier run'})."
        )
        console.note(
            "Their lines carry an `error`; rerun with --retry-errors to answer them again."
        )
    if counts.answered and counts.failed == counts.answered:
        raise VlmkitError(
            f"every one of the {counts.answered:,} samples answered failed",
            hint=f"first error: {counts.first_error}",
        )


def _kept(out: Path, interruption: _Interruption) -> str:
    """What a run stopped at once (Ctrl-C before answering, or twice) leaves."""
    if interruption.answering:
        return (
            f"stopped at once; the samples answered so far are kept in {out}.partial. Rerun "
            "the same command to resume."
        )
    if out.exists():
        return f"no sample was answered; {out} is as it was."
    return "no sample was answered; nothing was written."


class _Interruption:
    """Ctrl-C while answering: finish the batch in flight, then stop; twice: stop at once.
    Before the first batch (the model still loading) there is nothing to finish: stop at once."""

    def __init__(self) -> None:
        self.answering = False
        self.stop = False

    def requested(self) -> bool:
        return self.stop

    def handle(self, signum: int, frame: Any) -> None:
        if self.stop or not self.answering:
            raise KeyboardInterrupt
        self.stop = True
        console.stderr.print(
            "\nStopping after the answers in flight: a local model's batch, a server's next "
            "answer (Ctrl-C again to abort)..."
        )


@contextmanager
def _interruptible() -> Iterator[_Interruption]:
    interruption = _Interruption()
    previous = signal.signal(signal.SIGINT, interruption.handle)
    try:
        yield interruption
    finally:
        signal.signal(signal.SIGINT, previous)
