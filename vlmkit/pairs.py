"""`vlmkit pairs`: preference pairs from a dataset and a model's own answers, scored by vlmkit.

Each predictions file (a baseline run, sampled runs with other seeds, an SFT adapter's run) is
joined to the dataset by id and scored per sample with vlmkit's own metric, exactly as
`vlmkit score --per-sample` scores it. Then, per sample:

- `reference` (the default): chosen = the dataset's target; rejected = each distinct answer
  that scores worse than the target itself on the metric (its mistakes).
- `best`: chosen = the best-scoring answer, rejected = a worse one, kept only when their scores
  differ by at least `margin` (on-policy pairs: both sides are the model's own).

An errored, missing or empty answer is never a side of a pair, nor are two identical strings.
The output is a preference dataset folder (records with `chosen` and `rejected`), its images
linked or copied in so it stands alone, built under a temporary name like every vlmkit folder.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmkit import __version__
from vlmkit.errors import InputError, UsageError
from vlmkit.infer.selection import dataset_folder
from vlmkit.metrics import TASK_DEFAULTS, metric_class, resolve_metric_names
from vlmkit.records import METADATA_FILE, DatasetRecord, read_dataset, write_json_atomic
from vlmkit.scoring import ScoreConfig, evaluate, join
from vlmkit.staging import staged_folder

SIDECAR = "pairs.json"
MODES = ("reference", "best")


@dataclass(frozen=True)
class PairSettings:
    """How pairs are chosen (each field is a flag of `vlmkit pairs`)."""

    chosen: str = "reference"
    """`reference`: the target against the model's worse answers; `best`: the model's best
    answer against its worse ones (`--chosen`)."""
    metric: str | None = None
    """The per-sample metric that ranks answers; default the task's main one (`--metric`)."""
    margin: float = 0.0
    """`best`: the least score difference a pair needs, on the metric's scale (`--margin`)."""
    max_pairs_per_sample: int = 1
    """The most pairs one sample gives, worst rejected answers first (`--max-pairs-per-sample`)."""

    def __post_init__(self) -> None:
        if self.chosen not in MODES:
            raise UsageError(f"--chosen {self.chosen!r} is not one of {', '.join(MODES)}")
        if self.max_pairs_per_sample < 1:
            raise UsageError(
                f"--max-pairs-per-sample must be at least 1, got {self.max_pairs_per_sample}"
            )
        if self.metric is not None and len(resolve_metric_names(self.metric, flag="--metric")) != 1:
            raise UsageError(
                f"--metric {self.metric!r}: answers are ranked by one metric",
                hint="name one, e.g. --metric cer",
            )
        if not math.isfinite(self.margin) or self.margin < 0:
            raise UsageError(f"--margin {self.margin}: must be a finite number, 0 or more")
        if self.chosen == "reference" and self.margin:
            raise UsageError(
                "--margin applies to --chosen best",
                hint="the reference is always the better side: leave --margin out",
            )


@dataclass(frozen=True)
class Answer:
    text: Any
    score: float
    source: str


@dataclass
class PairsSummary:
    """What `pairs` did: for the CLI and the sidecar."""

    samples: int = 0
    samples_with_pairs: int = 0
    pairs: int = 0
    metric: str = ""
    no_pair: Counter[str] = field(default_factory=Counter)
    """Why the other samples gave no pair, by reason."""


def make_pairs(
    dataset: Path,
    predictions: list[Path],
    out: Path,
    settings: PairSettings,
    *,
    split: str | None = None,
    overwrite: bool = False,
) -> PairsSummary:
    """Write the preference dataset OUT from DATASET (with targets) and PREDS files."""
    folder = dataset_folder(dataset, split)
    records = list(read_dataset(folder))
    preference = next((r for r in records if r.is_preference), None)
    if preference is not None:
        raise InputError(
            f"DATASET {folder}: {preference.id!r} is already a preference pair",
            hint="pairs are made from a dataset with targets (the one the predictions answer)",
        )
    metric = _metric(records, settings)
    _check_margin(metric, settings.margin)
    for path in predictions:
        _check_run_record(path, folder)
    scored = {path: _scored_answers(path, folder, metric) for path in predictions}
    summary = PairsSummary(samples=len(records), metric=metric)
    rows: list[dict[str, Any]] = []
    taken = {r.id for r in records}  # an extra pair's id may not be another sample's
    for record in records:
        answers = _candidates(record, scored)
        pairs, reason = _pairs_of(record, answers, metric, settings)
        if not pairs:
            summary.no_pair[reason] += 1
            continue
        summary.samples_with_pairs += 1
        for k, (chosen, rejected) in enumerate(pairs):
            rid = record.id if k == 0 else _free_id(record.id, k + 1, taken)
            rows.append(_row(record, rid, chosen, rejected, metric, settings))
    summary.pairs = len(rows)
    if not rows:
        reasons = "; ".join(f"{n} {why}" for why, n in summary.no_pair.most_common())
        other = " or --chosen reference" if settings.chosen == "best" else ""
        raise InputError(
            f"no sample of {folder} gave a pair ({reasons})",
            hint=f"pass predictions that make mistakes (a baseline run, sampled runs){other}",
        )
    inputs = [("DATASET", dataset), *((f"PREDS {p.name}", p) for p in predictions)]
    with staged_folder(out, owner=SIDECAR, overwrite=overwrite, inputs=inputs) as staging:
        for name in sorted({row["file_name"] for row in rows}):
            _link_or_copy(folder / name, staging / name)
        with open(staging / METADATA_FILE, "w", encoding="utf-8", newline="\n") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        write_json_atomic(staging / SIDECAR, _sidecar(folder, predictions, settings, summary))
    return summary


def _metric(records: list[DatasetRecord], settings: PairSettings) -> str:
    if settings.metric is not None:
        (name,) = resolve_metric_names(settings.metric, flag="--metric")
        return name
    tasks = sorted({r.task for r in records})
    if len(tasks) > 1:
        raise InputError(
            f"the dataset mixes tasks ({', '.join(tasks)}): no one main metric ranks them",
            hint="pass --metric",
        )
    return TASK_DEFAULTS.get(tasks[0], TASK_DEFAULTS["ocr"])[0]


def _check_margin(metric: str, margin: float) -> None:
    """A margin a score difference can reach: accuracies and F1 stay within their scale; error
    rates (CER, WER, TER) have no upper bound."""
    cls = metric_class(metric)
    if not cls.higher_is_better:
        return
    top = 100.0 if cls.scale == "0-100" else 1.0
    if not 0 <= margin <= top:
        raise UsageError(
            f"--margin {margin:g} is outside {metric}'s range (0 to {top:g})",
            hint=f"give a difference of {metric} scores, e.g. --margin {top / 10:g}",
        )


def _check_run_record(path: Path, folder: Path) -> None:
    """Refuse predictions that answered another question: an unfinished run's file, a run on
    other data, or one asked with another prompt (what `vlmkit infer` recorded beside them)."""
    if path.name.endswith(".partial"):
        raise UsageError(
            f"PREDS {path} is an unfinished `vlmkit infer` run",
            hint="finish it (rerun the same infer command), then pass the finished file",
        )
    from vlmkit.infer.journal import sidecar_path
    from vlmkit.provenance import file_sha256

    try:
        record = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
        key = record["key"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # not vlmkit's: ids are all there is to check
    recorded = key.get("dataset_sha256") if isinstance(key, dict) else None
    if recorded and recorded != file_sha256(folder / METADATA_FILE):
        raise InputError(
            f"PREDS {path} answered another version of {folder} (its {sidecar_path(path).name} "
            "records another metadata.jsonl)",
            hint="pass predictions made on this dataset (and split)",
        )
    if isinstance(key, dict) and key.get("prompt"):
        raise InputError(
            f"PREDS {path} was made with --prompt {key['prompt']!r}, not the dataset's prompts",
            hint="a pair trains the dataset's own prompt: pass answers to it",
        )


def _scored_answers(path: Path, folder: Path, metric: str) -> dict[str, Answer | str]:
    """Each sample's answer in `path` with its score, or why it cannot be a side of a pair."""
    config = ScoreConfig(metrics=(metric,))
    joined = join(path, folder, config, flag=f"PREDS {path.name}")
    values = evaluate(joined, config).results[metric].sample_values()
    missing, errored = set(joined.missing), set(joined.errored)
    answers: dict[str, Answer | str] = {}
    for ref, text, value in zip(joined.references, joined.predictions, values, strict=True):
        if ref.id in missing:
            continue
        if ref.id in errored:
            answers[ref.id] = "errored"
        elif isinstance(text, str) and not text.strip():
            answers[ref.id] = "empty"
        else:
            answers[ref.id] = Answer(text, float(value), str(path))
    return answers


def _candidates(record: DatasetRecord, scored: dict[Path, dict[str, Answer | str]]) -> list[Any]:
    """The sample's distinct usable answers (first file wins a tie), or the reasons there are
    none (strings)."""
    answers, seen = [], set()
    for by_id in scored.values():
        answer = by_id.get(record.id, "no prediction")
        if isinstance(answer, Answer):
            key = _text(answer.text)
            if key in seen:
                continue
            seen.add(key)
        answers.append(answer)
    return answers


def _pairs_of(
    record: DatasetRecord, answers: list[Any], metric: str, settings: PairSettings
) -> tuple[list[tuple[Answer, Answer]], str]:
    """The sample's pairs (chosen, rejected), worst rejected first; or why it has none."""
    usable = [a for a in answers if isinstance(a, Answer)]
    if not usable:
        only_missing = all(a == "no prediction" for a in answers)
        return [], "had no prediction" if only_missing else "had only errored or empty answers"
    better = metric_class(metric).higher_is_better
    if settings.chosen == "reference":
        chosen = Answer(record.target, _perfect(metric, record), "reference")
        worse = [a for a in usable if _worse(a.score, chosen.score, better)
                 and _text(a.text) != _text(record.target)]  # fmt: skip
        if not worse:
            return [], "had no answer worse than the reference"
    else:
        if len(usable) < 2:
            return [], "had one distinct answer"
        chosen = max(usable, key=lambda a: a.score if better else -a.score)  # first of ties
        worse = [a for a in usable if _worse(a.score, chosen.score, better)
                 and abs(chosen.score - a.score) >= settings.margin]  # fmt: skip
        if not worse:
            return [], f"had no answer worse than the best by --margin {settings.margin:g}"
    ranked = sorted(worse, key=lambda a: a.score if better else -a.score)  # worst first
    return [(chosen, a) for a in ranked[: settings.max_pairs_per_sample]], ""


def _worse(score: float, than: float, higher_is_better: bool) -> bool:
    return score < than if higher_is_better else score > than


def _perfect(metric: str, record: DatasetRecord) -> float:
    """The target's own score: what an exact answer gets."""
    from vlmkit.metrics.base import Batch, MetricOptions

    scorer = metric_class(metric)(MetricOptions())
    batch = Batch([record.target], [record.target], MetricOptions())
    return float(scorer.sample_value(scorer.statistics(batch)[0]))


def _text(value: Any) -> str:
    return (
        value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    )


def _free_id(base: str, number: int, taken: set[str]) -> str:
    """`ID#2`, `ID#3`, ... the first that no sample and no earlier pair has."""
    while f"{base}#{number}" in taken:
        number += 1
    taken.add(f"{base}#{number}")
    return f"{base}#{number}"


def _row(
    record: DatasetRecord,
    rid: str,
    chosen: Answer,
    rejected: Answer,
    metric: str,
    settings: PairSettings,
) -> dict[str, Any]:
    pair = {
        "metric": metric,
        "mode": settings.chosen,
        "chosen_source": chosen.source,
        "chosen_score": chosen.score,
        "rejected_source": rejected.source,
        "rejected_score": rejected.score,
    }
    return {
        # The first pair keeps the sample's id (it joins with the source dataset); more pairs
        # of one sample are numbered.
        "id": rid,
        "file_name": record.file_name,
        "task": record.task,
        "prompt": record.prompt,
        "chosen": _text(chosen.text),
        "rejected": _text(rejected.text),
        "meta": {**record.meta, "source_id": record.id, "pair": pair},
    }


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the file system allows it (no second copy on disk), else a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _sidecar(
    folder: Path, predictions: list[Path], settings: PairSettings, summary: PairsSummary
) -> dict[str, Any]:
    return {
        "vlmkit_version": __version__,
        "dataset": str(folder.resolve()),
        "predictions": [str(p.resolve()) for p in predictions],
        "settings": {**settings.__dict__, "metric": summary.metric},
        "samples": summary.samples,
        "samples_with_pairs": summary.samples_with_pairs,
        "pairs": summary.pairs,
        "no_pair": dict(summary.no_pair),
    }
