"""The adapter folder: what may be replaced or resumed, and the manifest that makes it usable.

`OUT/` holds the adapter (`adapter_config.json`, `adapter_model.safetensors`), vlmkit's
manifest (`vlmkit-adapter.json`: base model, family, prompt format, data fingerprint,
hyper-parameters, versions, final metrics), the training log (`log.jsonl`), checkpoints for
`--resume`, and optionally `best/` and `merged/`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from vlmkit.errors import UsageError
from vlmkit.finetune.data import TrainingData
from vlmkit.finetune.settings import FinetuneSettings
from vlmkit.models.sources import ADAPTER_MANIFEST, ModelSource
from vlmkit.provenance import utc_now
from vlmkit.records import nearest_existing_parent

RUN_FILE = "finetune-run.json"
"""Written when training starts: the settings a `--resume` must share."""
CHECKPOINTS = "checkpoints"
LOG = "log.jsonl"
# Settings a resumed run may change: how long it runs and how it reports.
RESUMABLE_CHANGES = frozenset(
    {"epochs", "max_steps", "eval_every", "eval_samples", "eval_max_new_tokens", "logging_steps",
     "report_to", "save_every", "best_metric"}
)  # fmt: skip


def prepare_output(out: Path, *, overwrite: bool, resume: bool) -> None:
    """Check OUT before any work: a folder vlmkit may write, replace or resume."""
    if overwrite and resume:
        raise UsageError("--overwrite and --resume contradict each other", hint="choose one")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file", hint="give --out a folder name")
    if not nearest_existing_parent(out).is_dir():
        raise UsageError(f"--out {out}: a file is on the way", hint="choose another --out")
    ours = (out / RUN_FILE).is_file() or (out / ADAPTER_MANIFEST).is_file()
    if resume:
        if not any((out / CHECKPOINTS).glob("checkpoint-*")):
            raise UsageError(
                f"--resume: {out} has no checkpoint to continue from",
                hint="start the run without --resume (checkpoints are saved per epoch, "
                "or every --save-every steps)",
            )
        return
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            what = "an adapter" if (out / "adapter_config.json").exists() else "files"
            raise UsageError(
                f"--out {out} already holds {what}",
                hint="pass --resume to continue its training, --overwrite to start again, "
                "or choose another --out",
            )
        if not ours:
            raise UsageError(
                f"--out {out}: --overwrite only replaces folders that vlmkit finetune wrote",
                hint="choose another --out, or empty that folder yourself",
            )


def clear_output(out: Path) -> None:
    """Delete an OUT that `prepare_output` allowed `--overwrite` to replace."""
    if out.exists():
        shutil.rmtree(out)


def run_record(
    settings: FinetuneSettings, source: ModelSource, train: TrainingData
) -> dict[str, Any]:
    """What `--resume` must find unchanged: settings, base model and training data."""
    return {
        "settings": settings.to_json(),
        "base_model": source.model,
        "train_data": train.fingerprint()["metadata_sha256"],
        "started_at": utc_now(),
    }


def check_resume(
    out: Path, settings: FinetuneSettings, source: ModelSource, train: TrainingData
) -> None:
    """A resumed run must keep its base model, its data and every setting that shapes the
    model (not its length)."""
    try:
        record = json.loads((out / RUN_FILE).read_text(encoding="utf-8"))
        previous = record["settings"]
    except (OSError, ValueError, KeyError):
        return  # checkpoints without vlmkit's record: the trainer's own checks apply
    now = run_record(settings, source, train)
    for key, what in (("base_model", "base model"), ("train_data", "training data")):
        if record.get(key) is not None and record[key] != now[key]:
            raise UsageError(
                f"--resume: {out} was trained on another {what} ({record[key]})",
                hint="resume with the same --model and dataset, or start again with --overwrite",
            )
    settings = now["settings"]
    changed = sorted(
        key for key in settings
        if key not in RESUMABLE_CHANGES and previous.get(key) != settings[key]
    )  # fmt: skip
    if changed:
        details = "; ".join(f"{k}: {previous.get(k)!r} -> {settings[k]!r}" for k in changed)
        raise UsageError(
            f"--resume with other settings than the run in {out} ({details})",
            hint="resume with the same settings, or start again with --overwrite",
        )
