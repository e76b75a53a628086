"""The adapter folder: what may be replaced or resumed, and where a run writes it.

`OUT/` holds the adapter (`adapter_config.json`, `adapter_model.safetensors`), vlmkit's
manifest (`vlmkit-adapter.json`: base model, family, prompt format, data fingerprint,
hyper-parameters, versions, final metrics), the training log (`log.jsonl`), checkpoints for
`--resume`, and optionally `best/` and `merged/`.

A new OUT is trained in place, so a killed run can `--resume` from its checkpoints. An
`--overwrite` run trains beside it, in `.OUT.partial`, and takes OUT's name only once
complete: until then the old adapter stays whole, and a killed `--overwrite` run can itself
be resumed (`--resume` finds its partial folder) or started again.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from vlmkit.errors import UsageError
from vlmkit.finetune.data import TrainingData
from vlmkit.finetune.settings import FinetuneSettings
from vlmkit.models.sources import ADAPTER_MANIFEST, TRAINING_RECORD, ModelSource
from vlmkit.provenance import utc_now
from vlmkit.records import nearest_existing_parent, usual_permissions
from vlmkit.staging import INVENTORY, check_replaceable, write_inventory

RUN_FILE = TRAINING_RECORD
"""Written when training starts: the settings a `--resume` must share."""
CHECKPOINTS = "checkpoints"
LOG = "log.jsonl"
COMPLETIONS = "completions.jsonl"
"""GRPO's sampled completions, each with its reward components and reward, by step."""
BEST = "best"
MERGED = "merged"
SAVED = (
    "README.md adapter_config.json adapter_model.safetensors training_args.bin "
    "chat_template.jinja chat_template.json processor_config.json preprocessor_config.json "
    "tokenizer.json tokenizer_config.json tokenizer.model special_tokens_map.json "
    "added_tokens.json vocab.json merges.txt"
).split()
"""What the trainer saves beside the adapter: the adapter, its model card and the processor."""
IN_PROGRESS = re.compile(
    rf"{re.escape(RUN_FILE)}|{re.escape(LOG)}|{re.escape(COMPLETIONS)}|{CHECKPOINTS}/(checkpoint-\d+/.+|README\.md|runs/.+)"
    rf"|({BEST}|{MERGED}|\.{BEST}\.partial|\.{BEST}\.old|\.{MERGED}\.partial)/.+"
    rf"|{'|'.join(map(re.escape, SAVED))}|{re.escape(ADAPTER_MANIFEST)}"
)
"""What a run writes before it lists what it wrote (in an unfinished folder only): the run
record, the log, the trainer's checkpoints and tracker logs, the saved adapter, the best
adapter, the merged model and the folders those two are built in, and the manifest."""
# Settings a resumed run may change: how long it runs and how it reports.
RESUMABLE_CHANGES = frozenset(
    {"epochs", "max_steps", "eval_every", "eval_samples", "eval_max_new_tokens", "logging_steps",
     "report_to", "save_every", "best_metric"}
)  # fmt: skip


def prepare_output(out: Path, *, overwrite: bool, resume: bool) -> None:
    """Check OUT before any work: a folder vlmkit may write, replace or resume (an
    interrupted replacement of OUT is finished first)."""
    check_output(out, overwrite=overwrite, resume=resume, finish_swap=True)


def check_output(out: Path, *, overwrite: bool, resume: bool, finish_swap: bool = False) -> None:
    """The checks of `prepare_output`; without `finish_swap` they only read (`--dry-run`)."""
    if overwrite and resume:
        raise UsageError("--overwrite and --resume contradict each other", hint="choose one")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file", hint="give --out a folder name")
    if not nearest_existing_parent(out).is_dir():
        raise UsageError(f"--out {out}: a file is on the way", hint="choose another --out")
    here = Path.cwd().resolve()
    if out.resolve() == here or out.resolve() in here.parents:
        raise UsageError(
            f"--out {out} is the current folder or holds it",
            hint="give --out the name of a new folder, e.g. -o runs/lora",
        )
    if finish_swap:
        finish_interrupted_swap(out)
    for sibling in (partial_folder(out), retired_folder(out)):
        _check_sibling(out, sibling)
    if resume:
        if not has_checkpoint(out) and not has_checkpoint(partial_folder(out)):
            foreign = out.is_dir() and any(out.iterdir()) and not (out / RUN_FILE).is_file()
            raise UsageError(
                f"--resume: {out} has no checkpoint to continue from",
                hint="vlmkit finetune did not write that folder: choose another --out"
                if foreign
                else "start the run without --resume (checkpoints are saved per epoch, "
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
        check_replaceable(out, RUN_FILE, unlisted_ok=IN_PROGRESS)


def _check_sibling(out: Path, sibling: Path) -> None:
    """A working folder beside OUT may be deleted only if it is vlmkit finetune's own, whole."""
    if not sibling.exists() and not sibling.is_symlink():
        return
    if sibling.is_dir() and not sibling.is_symlink() and not any(sibling.iterdir()):
        return
    try:
        if not sibling.is_dir() or sibling.is_symlink():
            raise UsageError(f"--out {sibling}: not a folder")
        check_replaceable(sibling, RUN_FILE, unlisted_ok=IN_PROGRESS)
    except UsageError as error:
        raise UsageError(
            f"--out {out}: {sibling} is in the way and is not (only) vlmkit finetune's "
            f"working folder ({error.message.removeprefix(f'--out {sibling}').lstrip(': ')})",
            hint="rename or move that folder, or choose another --out",
        ) from None


def finish_interrupted_swap(out: Path) -> None:
    """Complete the replacement of OUT that a kill stopped between its two renames: the old
    OUT already moved aside, the finished new one (it lists its files) not yet renamed."""
    partial, retired = partial_folder(out), retired_folder(out)
    if out.exists() or not (partial / INVENTORY).is_file() or not (partial / RUN_FILE).is_file():
        return
    partial.rename(out)
    if (retired / RUN_FILE).is_file():
        shutil.rmtree(retired, ignore_errors=True)


def has_checkpoint(folder: Path) -> bool:
    return last_checkpoint(folder) is not None


def last_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint in `folder` that was saved whole.

    The trainer writes a checkpoint's files in place, its `trainer_state.json` last: a run
    killed while saving leaves a newer folder without it (or with half of it), which the
    trainer's own `resume_from_checkpoint=True` would pick, and fail on.
    """
    numbered = []
    for path in (folder / CHECKPOINTS).glob("checkpoint-*"):
        step = path.name.removeprefix("checkpoint-")
        if step.isdigit() and path.is_dir():
            numbered.append((int(step), path))
    for _, path in sorted(numbered, reverse=True):
        try:
            json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        return path
    return None


def drop_unfinished_checkpoints(folder: Path) -> Path | None:
    """Delete the checkpoints newer than the last whole one (a killed save); return that one."""
    last = last_checkpoint(folder)
    for path in (folder / CHECKPOINTS).glob("checkpoint-*"):
        step = path.name.removeprefix("checkpoint-")
        newer = last is None or (step.isdigit() and int(step) > int(last.name.split("-")[1]))
        if newer and path.is_dir():
            shutil.rmtree(path)
    return last


def partial_folder(out: Path) -> Path:
    """Where an `--overwrite` run trains until it replaces OUT."""
    return out.absolute().parent / f".{out.name}.partial"


def retired_folder(out: Path) -> Path:
    """Where the old OUT waits, for an instant, while the finished run takes its name."""
    return out.absolute().parent / f".{out.name}.old"


def work_folders(out: Path) -> list[tuple[str, Path]]:
    """The folders a run writes besides OUT, by what they are (no input may be one)."""
    return [("--out's partial folder", partial_folder(out)),
            ("--out's old folder", retired_folder(out))]  # fmt: skip


def training_folder(out: Path, *, overwrite: bool, resume: bool) -> Path:
    """Where this run writes: OUT itself, or its partial folder for an `--overwrite` run.

    Decided by the flags and the checkpoints alone, never by whether OUT exists yet: every
    process of a multi-process run asks, at moments the main one's writes may fall between.
    """
    partial = partial_folder(out)
    if resume:
        return partial if has_checkpoint(partial) else out
    return partial if overwrite else out


def start_folder(work: Path) -> None:
    """Make the run's folder (a stale partial one of a killed `--overwrite` run is cleared)."""
    if work.name.endswith(".partial") and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)


def reopen_folder(work: Path) -> None:
    """A resumed run trains in a folder that may hold a finished adapter: until it finishes
    again, the folder is unfinished (no manifest, no list of files), so nothing takes the new
    weights for finished ones nor the old manifest for theirs; a merged model of the old
    weights would no longer match the adapter, so it goes too (`--merge` makes it again)."""
    for name in (ADAPTER_MANIFEST, INVENTORY):
        (work / name).unlink(missing_ok=True)
    shutil.rmtree(work / MERGED, ignore_errors=True)


def finish_folder(work: Path, out: Path) -> None:
    """List what the run wrote, then give the finished folder OUT's name (replacing the old
    one only now, and deleting it only once the new one is in place)."""
    usual_permissions(work)
    write_inventory(work)
    if work == out:
        return
    retired = None
    if out.exists():
        retired = retired_folder(out)  # a leftover is a killed run's (prepare_output checked)
        shutil.rmtree(retired, ignore_errors=True)
        out.rename(retired)
    work.rename(out)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


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
    folder = training_folder(out, overwrite=False, resume=True)
    try:
        record = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
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
