"""Reading `vlmkit report`'s inputs: scores files from `score --json` and its per-sample JSONL.

Scores files are checked for what the report needs and for what it can live without: a file
that is not a scores file is an error; one from another vlmkit version, or without newer keys,
gives notices and is shown as far as it can be.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmkit import __version__
from vlmkit.errors import InputError
from vlmkit.records import iter_jsonl

SCORES_HINT = "pass the JSON file written by `vlmkit score PREDS REFS --json FILE`"
# Keys every current scores file has; a file without some is older (or hand-made).
EXPECTED_KEYS = ("vlmkit_version", "n", "task", "signatures", "higher_is_better", "inputs")


def is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


@dataclass
class ScoresFile:
    """One system's `vlmkit score --json` output, with the label it is shown under."""

    path: Path
    data: dict[str, Any]
    label: str = ""
    notices: list[str] = field(default_factory=list)

    @property
    def metrics(self) -> dict[str, Any]:
        return self.data["metrics"]

    def comparison(self, name: str) -> dict[str, Any] | None:
        found = (self.data.get("comparison") or {}).get(name)
        return found if isinstance(found, dict) else None

    def value(self, name: str) -> float | None:
        """The system's number for `name` (a comparison's, where the report itself is a dict)."""
        value = self.metrics.get(name)
        if is_number(value):
            return float(value)
        found = (self.comparison(name) or {}).get("system")
        return float(found) if is_number(found) else None

    def baseline_value(self, name: str) -> float | None:
        found = (self.comparison(name) or {}).get("baseline")
        if is_number(found):
            return float(found)
        value = ((self.data.get("baseline") or {}).get("metrics") or {}).get(name)
        return float(value) if is_number(value) else None

    @property
    def has_baseline(self) -> bool:
        return isinstance(self.data.get("baseline"), dict)

    def input_path(self, key: str) -> str | None:
        value = (self.data.get("inputs") or {}).get(key)
        return value if isinstance(value, str) else None


def load_scores(path: Path) -> ScoresFile:
    """Read one scores file; InputError naming the file if it is not one."""
    if not path.exists():
        raise InputError(f"scores file {path} does not exist", hint=SCORES_HINT)
    if not path.is_file():
        raise InputError(f"scores file {path} is not a file", hint=SCORES_HINT)
    try:
        data = json.loads(path.read_text("utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{path} is not JSON (not UTF-8 text)", hint=SCORES_HINT) from None
    except json.JSONDecodeError as error:
        raise InputError(
            f"{path}:{error.lineno}: not JSON ({error.msg})", hint=SCORES_HINT
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        raise InputError(f'{path} is not a vlmkit scores file (no "metrics")', hint=SCORES_HINT)
    scores = ScoresFile(path, data)
    version = data.get("vlmkit_version")
    if version != __version__:
        written = f"vlmkit {version}" if version else "an unknown vlmkit version"
        scores.notices.append(
            f"{path} was written by {written}, this is vlmkit {__version__}: "
            "what it holds is shown; re-run `vlmkit score` for a report of this version"
        )
    missing = [key for key in EXPECTED_KEYS if key not in data]
    if scores.has_baseline and "comparison" not in data:
        missing.append("comparison")
    if missing:
        scores.notices.append(
            f"{path} lacks {', '.join(missing)}: the parts that need them are left out"
        )
    return scores


def label_systems(files: list[ScoresFile]) -> None:
    """Name each system by its predictions file (`tuned`), else by its scores file."""
    labels = []
    for scores in files:
        predictions = scores.input_path("predictions")
        labels.append(Path(predictions).stem if predictions else scores.path.stem)
    for i, scores in enumerate(files):
        duplicated = labels.count(labels[i]) > 1
        scores.label = f"{labels[i]} ({scores.path.name})" if duplicated else labels[i]
    # Still ambiguous (same file names in different folders): number them.
    seen: dict[str, int] = {}
    for scores in files:
        seen[scores.label] = seen.get(scores.label, 0) + 1
        if seen[scores.label] > 1:
            scores.label = f"{scores.label} #{seen[scores.label]}"


def find_input(recorded: str | None, scores_path: Path) -> Path | None:
    """A path recorded in a scores file: as written (relative to where `score` ran), else
    relative to the scores file's folder or one of its ancestors (`score` most often ran in
    a project root above the folder its JSON went to)."""
    if not recorded:
        return None
    path = Path(recorded)
    if path.is_absolute():
        return path if path.exists() else None
    folder = scores_path.absolute().parent
    candidates = [path, *(base / path for base in (folder, *folder.parents))]
    return next((c for c in candidates if c.exists()), None)


def load_per_sample(path: Path, scores: ScoresFile) -> list[dict[str, Any]]:
    """The per-sample rows of `scores`, checked to belong to it (InputError otherwise)."""
    hint = f"pass the --per-sample file written by the same `vlmkit score` run as {scores.path}"
    if not path.is_file():
        raise InputError(f"--per-sample {path} does not exist", hint=hint)
    rows: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for line in iter_jsonl(path):
        rid = line.data.get("id")
        if not isinstance(rid, str) or not isinstance(line.data.get("scores"), dict):
            raise InputError(f"{line.where}: not a per-sample row (needs id and scores)", hint)
        if rid in seen:
            raise InputError(f"{line.where}: duplicate id {rid!r} (first at {seen[rid]})", hint)
        seen[rid] = line.where
        rows.append(line.data)
    n = scores.data.get("n")
    if isinstance(n, int) and n != len(rows):
        raise InputError(
            f"--per-sample {path} has {len(rows)} rows but {scores.path} scored n={n}", hint
        )
    wanted = [name for name in scores.metrics if scores.value(name) is not None]
    for row in rows:
        lacking = [name for name in wanted if name not in row["scores"]]
        if lacking:
            raise InputError(
                f"--per-sample {path}: row {row['id']!r} has no {', '.join(lacking)} score",
                hint,
            )
    _check_ids(path, rows, scores, hint)
    return rows


def _check_ids(path: Path, rows: list[dict[str, Any]], scores: ScoresFile, hint: str) -> None:
    references = find_input(scores.input_path("references"), scores.path)
    if references is None or not references.is_file():
        return
    ids = set()
    for line in iter_jsonl(references):
        rid = line.data.get("id")
        if not isinstance(rid, str):
            return  # references keyed by another --id-field: nothing to compare with
        ids.add(rid)
    unknown = [row["id"] for row in rows if row["id"] not in ids]
    if unknown:
        raise InputError(
            f"--per-sample {path}: {len(unknown)} ids are not in {references} "
            f"(first: {unknown[0]!r})",
            hint,
        )


def load_predictions(path: Path | None) -> dict[str, str]:
    """id -> prediction text of a predictions JSONL (the baseline's), or {} if unreadable."""
    if path is None or not path.is_file():
        return {}
    out: dict[str, str] = {}
    try:
        for line in iter_jsonl(path):
            rid, prediction = line.data.get("id"), line.data.get("prediction")
            if isinstance(rid, str) and prediction is not None:
                out[rid] = prediction if isinstance(prediction, str) else json.dumps(prediction)
    except InputError:
        return {}
    return out
