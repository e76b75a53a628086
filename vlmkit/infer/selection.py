"""The samples a run answers: a dataset folder (or one split of it), limited, then sharded."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from vlmkit.errors import InputError, UsageError
from vlmkit.infer.settings import RunOptions
from vlmkit.records import METADATA_FILE, read_dataset


@dataclass(frozen=True)
class Sample:
    """One question to put to the model."""

    id: str
    image: Path
    prompt: str


@dataclass(frozen=True)
class Selection:
    """The samples of this run, in dataset order, and where they came from."""

    folder: Path
    """The dataset folder read (the split's folder with `--split`)."""
    metadata_sha256: str
    """Digest of its metadata.jsonl: resuming against a changed dataset is refused."""
    samples: list[Sample]


def dataset_folder(
    dataset: Path, split: str | None, *, flag: str = "DATASET", split_flag: str = "--split"
) -> Path:
    """The folder holding metadata.jsonl: DATASET itself, or DATASET/SPLIT with `--split`."""
    if not dataset.exists():
        raise UsageError(f"{flag} {dataset} does not exist", hint="check the path")
    if not dataset.is_dir():
        raise UsageError(
            f"{flag} {dataset} is not a folder",
            hint=f"pass the dataset folder that holds {METADATA_FILE}",
        )
    splits = sorted(p.name for p in dataset.iterdir() if (p / METADATA_FILE).is_file())
    if split is not None:
        if split not in splits:
            known = ", ".join(splits) or "none: this folder has no split subfolders"
            raise UsageError(
                f"{split_flag} {split!r}: {dataset} has no such split", hint=f"splits: {known}"
            )
        return dataset / split
    if (dataset / METADATA_FILE).is_file():
        return dataset
    if splits:
        raise UsageError(
            f"{flag} {dataset} holds splits ({', '.join(splits)}), not one dataset",
            hint=f"choose one with {split_flag}, e.g. {split_flag} {splits[-1]}",
        )
    raise InputError(
        f"{flag} {dataset} has no {METADATA_FILE}",
        hint="make one with `vlmkit synth` or `vlmkit convert`",
    )


def select_samples(dataset: Path, split: str | None, options: RunOptions) -> Selection:
    """Read the dataset (validating every line) and pick this run's samples, in order."""
    folder = dataset_folder(dataset, split)
    samples = []
    read = 0
    for position, record in enumerate(read_dataset(folder)):
        read += 1
        if options.limit is not None and position >= options.limit:
            continue  # still read: a duplicate id later in the file is an error either way
        if not options.shard.holds(position):
            continue
        prompt = options.prompt if options.prompt is not None else record.prompt
        samples.append(Sample(record.id, folder / record.file_name, prompt))
    if not read:
        raise InputError(
            f"{folder / METADATA_FILE} has no samples", hint="is it the right dataset?"
        )
    missing_prompts = [s.id for s in samples if not s.prompt.strip()]
    if missing_prompts:
        raise InputError(
            f"{folder / METADATA_FILE}: {len(missing_prompts)} samples have no prompt "
            f"(first: {missing_prompts[0]!r})",
            hint="give every sample a prompt with --prompt TEXT",
        )
    digest = hashlib.sha256((folder / METADATA_FILE).read_bytes()).hexdigest()
    return Selection(folder, digest, samples)
