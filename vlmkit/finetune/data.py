"""Training and evaluation samples from dataset folders, checked before any model loads."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmkit.errors import InputError
from vlmkit.infer.selection import dataset_folder
from vlmkit.records import METADATA_FILE, DatasetRecord, read_dataset


@dataclass(frozen=True)
class TrainingData:
    """The records of one dataset folder, with what identifies them in a manifest."""

    folder: Path
    records: list[DatasetRecord]
    metadata_sha256: str

    @property
    def metadata(self) -> Path:
        return self.folder / METADATA_FILE

    def image_paths(self) -> list[Path]:
        return [self.folder / r.file_name for r in self.records]

    def sample(self, count: int, seed: int = 0) -> list[DatasetRecord]:
        """The same `count` records at every call, drawn with a fixed seed from the whole set
        and kept in dataset order (the first K of a file sorted by source or label would not
        represent it)."""
        if count >= len(self.records):
            return list(self.records)
        chosen = sorted(random.Random(seed).sample(range(len(self.records)), count))
        return [self.records[i] for i in chosen]

    def check_scorable(self) -> None:
        """An eval set must have targets and one task with default metrics, as `vlmkit score`
        needs."""
        from vlmkit.metrics import TASK_DEFAULTS

        pair = next((r for r in self.records if r.target is None), None)
        if pair is not None:
            raise InputError(
                f"--eval {self.folder}: {pair.id!r} has no target (a preference pair): "
                "evaluation by generation scores answers against targets",
                hint="evaluate on the dataset the pairs were made from (with its targets)",
            )
        tasks = sorted({r.task for r in self.records})
        if len(tasks) > 1:
            raise InputError(
                f"--eval {self.folder} mixes tasks ({', '.join(tasks)})",
                hint="evaluate on a dataset of one task",
            )
        if tasks[0] not in TASK_DEFAULTS:
            raise InputError(
                f"--eval {self.folder}: task {tasks[0]!r} has no default metrics",
                hint=f"tasks vlmkit scores: {', '.join(TASK_DEFAULTS)}",
            )

    def check_metric(self, name: str) -> None:
        """Refuse a metric these records cannot be scored with (a VQA metric without answers)."""
        from vlmkit.scoring import check_answer_metrics

        check_answer_metrics(self.references(self.records), [name])

    def references(self, records: list[DatasetRecord]) -> list[Any]:
        """`records` (some of these) as `vlmkit.scoring.Reference`s, each naming its line."""
        from vlmkit.scoring import Reference

        lines = {record.id: number for number, record in enumerate(self.records, start=1)}
        return [Reference(r.id, r.target, r.task, r.to_json(), f"{self.metadata}:{lines[r.id]}",
                          r.answers) for r in records]  # fmt: skip

    def shared_with(self, other: TrainingData) -> int:
        """How many of these samples are also in `other` (the same id or the same image)."""
        ids = {r.id for r in other.records}
        images = {(other.folder / r.file_name).resolve() for r in other.records}
        return sum(
            r.id in ids or (self.folder / r.file_name).resolve() in images for r in self.records
        )

    def fingerprint(self) -> dict[str, Any]:
        tasks = sorted({r.task for r in self.records})
        return {
            "folder": str(self.folder.resolve()),
            "metadata_sha256": self.metadata_sha256,
            "samples": len(self.records),
            "tasks": tasks,
        }


def read_training_data(dataset: Path, split: str | None, *, flag: str) -> TrainingData:
    """Every record of DATASET (or its split), refusing what no objective can train on (the
    objective checks its own fields: `Objective.check_data`).

    `flag` names the argument in errors (TRAIN_DATASET, --eval).
    """
    split_flag = "--eval-split" if flag == "--eval" else "--split"
    folder = dataset_folder(dataset, split, flag=flag, split_flag=split_flag)
    metadata = folder / METADATA_FILE
    records: list[DatasetRecord] = []
    for number, record in enumerate(read_dataset(folder), start=1):
        where = f"{metadata}:{number}"
        if not record.prompt.strip():
            raise InputError(
                f"{where}: {record.id!r} has no prompt",
                hint="the prompt is what inference will ask: give every record one",
            )
        if not (folder / record.file_name).is_file():
            raise InputError(
                f"{where}: image {record.file_name} of {record.id!r} is missing",
                hint=f"check the files of {flag}",
            )
        records.append(record)
    if not records:
        raise InputError(f"{flag} {metadata} has no samples", hint="is it the right dataset?")
    digest = hashlib.sha256(metadata.read_bytes()).hexdigest()
    return TrainingData(folder, records, digest)
