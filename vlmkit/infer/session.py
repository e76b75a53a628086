"""One `vlmkit infer` run from request to finished file: checks first, the model only if needed.

`plan` does every check that needs no model (dataset, output, model and adapter paths, the
existing file's configuration) so a mistake is reported in milliseconds; `execute` loads the
model, answers what is pending and records the run in the sidecar.
"""

from __future__ import annotations

import hashlib
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from vlmkit import __version__
from vlmkit.errors import UsageError, VlmkitError
from vlmkit.infer.backends import backend_named
from vlmkit.infer.journal import Journal
from vlmkit.infer.run import RunCounts, pending, run_batches
from vlmkit.infer.selection import Sample, Selection, select_samples
from vlmkit.infer.settings import GenerationSettings, RemoteOptions, RunOptions
from vlmkit.models.sources import ModelSource, resolve_source
from vlmkit.outputs import image_folders, refuse_overlaps
from vlmkit.provenance import file_sha256, library_versions, require_model_libraries, utc_now

_VERSIONED = ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "vllm", "openai",
              "pillow")  # fmt: skip


@dataclass(frozen=True)
class InferRequest:
    """Everything `vlmkit infer` was asked, validated field by field by its dataclasses."""

    dataset: Path
    out: Path
    model: str | None
    adapter: Path | None
    split: str | None
    load: Any  # vlmkit.models.loading.LoadOptions (heavy module: not imported here)
    generation: GenerationSettings
    options: RunOptions
    backend: str = "transformers"
    remote: RemoteOptions = field(default_factory=RemoteOptions)
    """How a served model is reached (`--backend openai`)."""
    max_model_len: int | None = None
    """vLLM's context length, prompt and answer (`--max-model-len`); None: the model's."""


@dataclass
class Plan:
    """What a run will do, known before any model loads."""

    request: InferRequest
    selection: Selection
    source: ModelSource
    journal: Journal
    key: dict[str, Any]
    done: dict[str, dict[str, Any]]
    todo: list[Sample]
    counts: RunCounts
    notes: list[str] = field(default_factory=list)
    """What the user should hear before the run (the adapter's image settings, used)."""
    warnings: list[str] = field(default_factory=list)
    """What the user should be warned of (image settings other than the adapter's)."""

    @property
    def finished(self) -> bool:
        """OUT holds exactly this run's samples, each with its line: nothing to load or write."""
        wanted = {sample.id for sample in self.selection.samples}
        in_out = self.journal.existing_file() == self.request.out
        return not self.todo and in_out and set(self.done) == wanted


@dataclass
class Checked:
    """What the checks of a request found: all a run needs that takes no model to know."""

    request: InferRequest
    """As asked, with the adapter's image settings where none were asked."""
    selection: Selection
    source: ModelSource
    journal: Journal
    notes: list[str]
    warnings: list[str]


def plan(request: InferRequest) -> Plan:
    """Check everything that needs no model, and find what is left to answer."""
    found = check(request)
    request, journal, selection = found.request, found.journal, found.selection
    key = _settings_key(request, selection, found.source)
    journal.acquire()  # released by execute(), or by the caller when nothing is left to do
    try:
        journal.check_resumable(key, overwrite=request.options.overwrite)
        done = journal.load(overwrite=request.options.overwrite)
    except BaseException:
        journal.release()
        raise
    todo, counts = _left_to_answer(request, selection, done)
    return Plan(request, selection, found.source, journal, key, done, todo, counts, found.notes,
                found.warnings)  # fmt: skip


def look_ahead(found: Checked) -> tuple[list[Sample], RunCounts]:
    """What a run of the checked request would find left to answer, read without its lock and
    without touching OUT (`--dry-run`)."""
    request, journal, overwrite = found.request, found.journal, found.request.options.overwrite
    if journal.existing_file() is not None and not overwrite:
        journal.check_resumable(_settings_key(request, found.selection, found.source),
                                overwrite=False)  # fmt: skip
    return _left_to_answer(request, found.selection, journal.peek(overwrite=overwrite))


def _left_to_answer(
    request: InferRequest, selection: Selection, done: dict[str, dict[str, Any]]
) -> tuple[list[Sample], RunCounts]:
    todo = pending(selection.samples, done, retry_errors=request.options.retry_errors)
    selected = len(selection.samples)
    return todo, RunCounts(selected=selected, already_done=selected - len(todo), todo=len(todo))


def check(request: InferRequest) -> Checked:
    """Every check of `plan` that reads but writes nothing (`--dry-run` stops here)."""
    backend = backend_named(request.backend)  # a did-you-mean on a typo
    backend.check(request)  # what this backend cannot do, before anything heavy loads
    if not backend.remote:
        _check_remote_flags(request)
    if request.load.image.given() and request.backend != "transformers":
        from vlmkit.models.resolution import FLAGS

        flags = ", ".join(FLAGS[name] for name in request.load.image.given())
        raise UsageError(
            f"{flags}: image settings apply to --backend transformers; vLLM and served models "
            "resize images with their own processor settings",
            hint="drop them, or answer with --backend transformers",
        )
    if request.max_model_len is not None and request.backend != "vllm":
        raise UsageError("--max-model-len is for --backend vllm", hint="drop it")
    if request.max_model_len is not None and request.max_model_len < 1:
        raise UsageError(f"--max-model-len must be at least 1, got {request.max_model_len}")
    if not request.out.name or request.out.is_dir():
        raise UsageError(
            f"--out {request.out} is a folder", hint="give --out a file name, e.g. -o preds.jsonl"
        )
    journal = Journal(request.out)
    journal.check()
    selection = select_samples(request.dataset, request.split, request.options)
    source = (
        # A served model is a name on a server: no folder, hub id or digest to check here.
        ModelSource(str(request.model), local=False, config=None, adapter=None, manifest=None)
        if backend.remote
        else resolve_source(request.model, request.adapter)
    )
    request, notes, warnings = _trained_image_settings(request, source)
    refuse_overlaps(
        [("--out", journal.out), ("--out's sidecar", journal.sidecar),
         ("--out's partial file", journal.partial)],
        [("DATASET", request.dataset),
         ("--model" if request.model else "--adapter's base model",
          source.model if source.local else None),
         ("--adapter", request.adapter),
         *image_folders(request.dataset, [sample.image for sample in selection.samples])],
    )  # fmt: skip
    journal.check_owned(overwrite=request.options.overwrite)
    return Checked(request, selection, source, journal, notes, warnings)


def _trained_image_settings(
    request: InferRequest, source: ModelSource
) -> tuple[InferRequest, list[str], list[str]]:
    """An adapter answers best at the resolution it was trained at: without image flags, its
    manifest's settings are used (and said); with others, they are used and warned of."""
    from vlmkit.models.resolution import ImageSettings

    recorded = (source.manifest or {}).get("image_preprocessing")
    if not isinstance(recorded, dict):
        return request, [], []  # no adapter, or one from before vlmkit recorded them
    trained = ImageSettings.from_json(recorded.get("settings"))
    asked = request.load.image
    if not asked.given():
        if not trained.given():
            return request, [], []
        used = replace(request, load=replace(request.load, image=trained))
        return used, [f"images preprocessed as the adapter was trained: {trained.as_flags()}"], []
    if asked == trained:
        return request, [], []
    return (
        request,
        [],
        [
            f"the adapter was trained with image settings {trained.as_flags()}; answering with "
            f"{asked.as_flags()} as asked: another resolution can lower its scores"
        ],
    )


def execute(
    plan: Plan,
    *,
    advance: Callable[[int], None] = lambda n: None,
    stop_requested: Callable[[], bool] = lambda: False,
    on_loaded: Callable[[Any], None] = lambda loaded: None,
) -> RunCounts:
    """Load the model, answer the pending samples, and finish the file when all are answered."""
    try:
        return _execute(plan, advance, stop_requested, on_loaded)
    finally:
        plan.journal.release()


def _execute(
    plan: Plan,
    advance: Callable[[int], None],
    stop_requested: Callable[[], bool],
    on_loaded: Callable[[Any], None],
) -> RunCounts:
    request, counts, journal = plan.request, plan.counts, plan.journal
    started_at = utc_now()
    previous = journal.previous_config() or {}
    # OUT stays resumable after an interruption only if it was, and this run continues it.
    out_sha256 = previous.get("out_sha256") if not request.options.overwrite else None
    described = previous.get("model") or {}
    if plan.todo:
        predictor, described = _predictor(plan)
        on_loaded(described)
        created = not journal.partial.exists()
        journal.open(plan.key, fresh=request.options.overwrite)
        try:
            run_batches(
                plan.todo,
                predictor,
                journal,
                batch_size=_batch_size(request),
                counts=counts,
                advance=advance,
                stop_requested=stop_requested,
            )
        except VlmkitError:
            # Stopped before any answer (a server refusing the model at its first request):
            # the partial file this run began holds nothing worth resuming.
            if created and counts.answered == 0:
                journal.close()
                journal.partial.unlink(missing_ok=True)
            raise
        finally:
            journal.close()
            predictor.close()
    record = _sidecar(plan, described, started_at)
    if counts.interrupted:
        # The sidecar describes OUT; an interrupted --overwrite leaves OUT as it was, so its
        # record stays too (OUT.partial's header carries what a resume needs).
        if not (request.options.overwrite and request.out.is_file()):
            record.update(status="interrupted", out_sha256=out_sha256, counts=counts.to_json())
            journal.write_sidecar(record)
        return counts

    def finished_record(lines: list[dict[str, Any]]) -> dict[str, Any]:
        counts.errors_in_file = sum("error" in line for line in lines)
        return {**record, "counts": counts.to_json()}

    journal.finish([sample.id for sample in plan.selection.samples], finished_record)
    return counts


def _predictor(plan: Plan) -> tuple[Any, dict[str, Any]]:
    """Load the model for the chosen backend; check the settings known only once it is loaded."""
    request = plan.request
    chosen = backend_named(request.backend)
    if not chosen.remote:
        require_model_libraries("vlmkit infer")
    backend = chosen.load(plan.source, request)
    described = backend.describe().to_json()
    loaded = getattr(backend, "loaded", None)
    if loaded is not None:  # a local model: how many tokens this run's images take
        from vlmkit.models.resolution import image_token_stats

        images = [sample.image for sample in plan.selection.samples]
        described["image_tokens"] = image_token_stats(loaded.processor, images)
    if described["prompt_format"] is not None:
        check_trained_prompt_format(plan.source, described["prompt_format"])
    loaded_key = {"prompt_format": described["prompt_format"], "dtype_loaded": described["dtype"]}
    plan.journal.check_resumable(
        {**plan.key, **loaded_key}, overwrite=request.options.overwrite or not plan.done
    )
    plan.key.update(loaded_key)
    return backend, described


def check_trained_prompt_format(source: ModelSource, loaded: dict[str, Any]) -> None:
    """An adapter answers the prompts it was trained on: refuse a base that now formats others."""
    trained = (source.manifest or {}).get("prompt_format")
    if trained and trained != loaded:
        raise UsageError(
            f"adapter {source.adapter} was trained with prompt format {trained}, but "
            f"{source.model} now formats prompts as {loaded}",
            hint="use the base model (and chat template) the adapter was trained with",
        )


def _settings_key(
    request: InferRequest, selection: Selection, source: ModelSource
) -> dict[str, Any]:
    """The settings that change predictions: a resumed run must share all of them."""
    adapter = source.adapter
    weights = adapter / "adapter_model.safetensors" if adapter else None
    adapter_digest = file_sha256(weights) if weights and weights.is_file() else None
    remote: dict[str, Any] = {}
    if request.remote.endpoint:
        remote["endpoint"] = request.remote.endpoint.rstrip("/")
        if request.remote.image_detail:  # a server may downscale the image: other answers
            remote["image_detail"] = request.remote.image_detail
    return {
        "dataset_sha256": selection.metadata_sha256,
        "model": source.model,  # a local folder is already absolute
        "model_files": _model_files(Path(source.model)) if source.local else None,
        # The weights identify an adapter wherever its folder moves; the path only without them.
        "adapter": adapter_digest or (str(adapter.resolve()) if adapter else None),
        "prompt": request.options.prompt,
        "shard": str(request.options.shard),
        "generation": request.generation.to_json(),
        "load_in_4bit": request.load.load_in_4bit,
        "image": request.load.image.given(),
        "backend": request.backend,
        **remote,  # a served model is its server and its name (no local digests)
    }


def _batch_size(request: InferRequest) -> int:
    """A server is kept busy: a batch holds several rounds of --concurrency requests, so the
    wait for a batch's slowest answer (before it is journalled) is seldom paid."""
    if backend_named(request.backend).remote:
        return max(request.options.batch_size, 4 * request.remote.concurrency)
    return request.options.batch_size


def _check_remote_flags(request: InferRequest) -> None:
    """The flags of a served model, given to a local backend: said, not ignored."""
    given = [f"--{option.name.removesuffix('_s').replace('_', '-')}"
             for option in fields(RemoteOptions)
             if getattr(request.remote, option.name) != option.default]  # fmt: skip
    if given:
        verb = "applies" if len(given) == 1 else "apply"
        raise UsageError(
            f"{', '.join(given)} {verb} to a served model (--backend openai), not to "
            f"--backend {request.backend}",
            hint="add --backend openai --endpoint URL, or leave them out",
        )


def _remote_options(remote: RemoteOptions) -> dict[str, Any]:
    """How the server was asked (the API key's variable's name, never its value)."""
    return {"endpoint": remote.endpoint, "concurrency": remote.concurrency,
            "timeout_s": remote.timeout_s, "max_retries": remote.max_retries, "rpm": remote.rpm,
            "api_key_env": remote.api_key_env, "image_detail": remote.image_detail}  # fmt: skip


def _model_files(folder: Path) -> str:
    """A digest of config.json and the weight files' names and sizes: new weights in the same
    folder are a new model (hashing gigabytes of weights on every run would cost minutes)."""
    digest = hashlib.sha256((folder / "config.json").read_bytes())
    for weights in sorted(folder.glob("*.safetensors")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return digest.hexdigest()


def _sidecar(plan: Plan, described: dict[str, Any], started_at: str) -> dict[str, Any]:
    request = plan.request
    return {
        "vlmkit_version": __version__,
        "command": "infer",
        "argv": sys.argv[1:],
        "status": "complete",
        "key": plan.key,
        "dataset": {
            "folder": str(plan.selection.folder.resolve()),
            "split": request.split,
            "metadata_sha256": plan.selection.metadata_sha256,
        },
        "model": described,
        "generation": request.generation.to_json(),
        "options": {
            "batch_size": request.options.batch_size,
            "limit": request.options.limit,
            "prompt": request.options.prompt,
            "shard": str(request.options.shard),
            "retry_errors": request.options.retry_errors,
            "backend": request.backend,
            **({"remote": _remote_options(request.remote)} if request.remote.endpoint else {}),
        },
        "versions": library_versions(_VERSIONED),
        "host": socket.gethostname(),
        "started_at": started_at,
        "ended_at": utc_now(),
        "counts": plan.counts.to_json(),
    }
