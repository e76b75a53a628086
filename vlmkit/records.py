"""The JSONL file contracts (datasets and predictions): streaming readers and atomic writers.

Every reader error names `path:line` and says how to fix it, because a user with a 100,000-line
file needs to know which line is wrong, not that "JSON failed". Stdlib only.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from vlmkit.errors import InputError, UsageError

METADATA_FILE = "metadata.jsonl"


@dataclass(frozen=True)
class DatasetRecord:
    """One sample of a dataset folder (the `metadata.jsonl` line of DESIGN.md)."""

    id: str
    """Unique and stable across runs."""
    file_name: str
    """Image path relative to the dataset folder."""
    task: str
    """Default metric set: `ocr`, `json`, `letter`, ..."""
    prompt: str
    """The question put to the model."""
    target: str | None
    """The expected answer (None in a preference dataset, which has `chosen` and `rejected`)."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Everything needed to analyse results later (source, split, rendering parameters...)."""
    chosen: str | None = None
    """A preference dataset's preferred answer."""
    rejected: str | None = None
    """A preference dataset's dispreferred answer."""
    answers: tuple[str, ...] | None = None
    """Every acceptable answer, where a question has several (VQA; `target` is the one trained
    on). The VQA metrics and exact_match accept any of them."""

    @property
    def is_preference(self) -> bool:
        return self.chosen is not None

    def to_json(self) -> dict[str, Any]:
        answers = (
            {"chosen": self.chosen, "rejected": self.rejected}
            if self.is_preference
            else {"target": self.target}
        )
        return {
            "id": self.id,
            "file_name": self.file_name,
            "task": self.task,
            "prompt": self.prompt,
            **answers,
            **({"answers": list(self.answers)} if self.answers is not None else {}),
            "meta": self.meta,
        }


@dataclass(frozen=True)
class PredictionRecord:
    """One line of a predictions file."""

    id: str
    """The dataset record this answers."""
    prediction: str
    """The decoded answer, prompt removed."""
    error: str | None = None
    """Why no prediction was made (unreadable image, too long...), or None."""
    latency_s: float | None = None
    """Seconds spent generating this sample's batch, divided by the batch size."""
    new_tokens: int | None = None
    """Number of generated tokens."""
    prompt_tokens: int | None = None
    """Tokens of the prompt, image included, where the backend reports them (a server's usage)."""
    finish_reason: str | None = None
    """Why generation ended, where the backend says (a server's `stop`, `length`...)."""
    truncated: bool | None = None
    """True when the answer was cut by the token limit (`--max-new-tokens`) before it ended."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "prediction": self.prediction}
        optional = {"error": self.error, "latency_s": self.latency_s,
                    "new_tokens": self.new_tokens, "prompt_tokens": self.prompt_tokens,
                    "finish_reason": self.finish_reason, "truncated": self.truncated}  # fmt: skip
        out.update({key: value for key, value in optional.items() if value is not None})
        return out


@dataclass(frozen=True)
class Line:
    """A parsed JSONL line with its origin, so later checks can still name `path:line`."""

    path: Path
    number: int
    data: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{self.path}:{self.number}"


def resolve_jsonl(path: Path, *, role: str, flag: str) -> Path:
    """Return the JSONL file for `path`: the file itself, or a dataset folder's metadata.jsonl."""
    if path.is_dir():
        candidate = path / METADATA_FILE
        if candidate.is_file():
            return candidate
        raise InputError(
            f"{role} {path} is a folder without a {METADATA_FILE}",
            hint=f"pass a dataset folder (with {METADATA_FILE}) or a JSONL file as {flag}",
        )
    if path.is_file():
        return path
    if path.exists():
        raise InputError(f"{role} {path} is neither a file nor a folder", hint=f"check {flag}")
    raise InputError(f"{role} {path} does not exist", hint=f"check the path given as {flag}")


class LineError(InputError):
    """A JSONL line that cannot be read: `where` is `path:line`, `reason` the rest."""

    def __init__(self, where: str, reason: str, hint: str) -> None:
        super().__init__(f"{where}: {reason}", hint=hint)
        self.where = where
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[str, str, str | None]]:
        return (type(self), (self.where, self.reason, self.hint))


def iter_jsonl(path: Path) -> Iterator[Line]:
    """Yield each non-blank line of `path` as a JSON object, streaming, with `path:line` errors."""
    for number, raw in _raw_lines(path):
        yield _parse_line(path, number, raw)


def iter_jsonl_lenient(path: Path) -> Iterator[Line | LineError]:
    """As `iter_jsonl`, but a line that cannot be read comes as its error, and reading goes on.

    For readers that can skip bad rows (`vlmkit convert --skip-bad`); an unreadable file is
    still raised.
    """
    for number, raw in _raw_lines(path):
        try:
            yield _parse_line(path, number, raw)
        except LineError as error:
            yield error


def read_run_json(path: Path) -> Any:
    """A JSON file a run wrote (a manifest, a study's record), None when it is not there yet."""
    try:
        return json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise InputError(
            f"{path} cannot be read ({error})",
            hint="the run's own file: was it edited, or is the run still writing it?",
        ) from None


def read_run_log(path: Path) -> list[dict[str, Any]]:
    """The rows of a log a run appends to (log.jsonl, trials.jsonl), none when it is absent.

    A run killed while writing leaves its last line cut short: that line is left out, as a
    resumed run drops it. A bad line before the last is still an error naming it.
    """
    if not path.is_file():
        return []
    lines = list(iter_jsonl_lenient(path))
    for line in lines[:-1]:
        if isinstance(line, LineError):
            raise InputError(f"{line.where}: {line.reason}", hint="the log was edited by hand?")
    return [line.data for line in lines if isinstance(line, Line)]


def _raw_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", hint="check the path") from exc
    with handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                yield number, raw


def _parse_line(path: Path, number: int, raw: bytes) -> Line:
    where = f"{path}:{number}"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LineError(
            where,
            f"not UTF-8 (byte {exc.object[exc.start]:#04x} at column {exc.start + 1})",
            hint="re-encode the file as UTF-8, e.g. `iconv -f latin1 -t utf-8`",
        ) from exc
    if number == 1 and text.startswith("\ufeff"):
        text = text[1:]  # a UTF-8 byte-order mark from Windows editors is harmless
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LineError(
            where,
            f"malformed JSON ({exc.msg} at column {exc.colno})",
            hint="each line must be one complete JSON object; fix or delete that line",
        ) from exc
    except (ValueError, RecursionError) as exc:  # a 5000-digit number, 100k-deep nesting
        raise LineError(
            where,
            f"unreadable JSON ({type(exc).__name__}: {exc})",
            hint="each line must be one ordinary JSON object; fix or delete that line",
        ) from exc
    if not isinstance(data, dict):
        raise LineError(
            where,
            f"expected a JSON object, got {type(data).__name__}",
            hint='each line must look like {"id": ..., ...}',
        )
    return Line(path, number, data)


def require_field(line: Line, name: str, *, flag: str | None = None) -> Any:
    """Return the value at `name` on the line, or fail naming the line, what is there, and the
    flag to set. `name` is a field, or a path into nested fields: dots between keys, integers
    for list items (`filtered_resps.0`, `answer.text`); a field whose own name holds a dot is
    found as it is."""
    value, problem = _walk(line.data, name)
    if problem is None:
        return value
    hint = problem[1] + (f"; choose the field with {flag}" if flag else "")
    raise InputError(f"{line.where}: {problem[0]}", hint=hint)


def field_value(data: dict[str, Any], name: str) -> Any:
    """The value at field or path `name` (as `require_field` finds it), or None."""
    value, problem = _walk(data, name)
    return None if problem is not None else value


def has_field(data: dict[str, Any], name: str) -> bool:
    return _walk(data, name)[1] is None


def _walk(data: dict[str, Any], name: str) -> tuple[Any, tuple[str, str] | None]:
    """(value, None) at `name`, or (None, (what is missing, what is there))."""
    if name in data:
        return data[name], None
    parts = name.split(".")
    if len(parts) == 1 or not all(parts):
        found = ", ".join(sorted(data)) or "none"
        return None, (f"missing field {name!r}", f"fields on that line: {found}")
    value: Any = data
    for depth, part in enumerate(parts):
        where = ".".join(parts[:depth]) or "the line"
        shown = f"{where!r}" if depth else where
        if isinstance(value, dict):
            if part not in value:
                found = ", ".join(sorted(map(str, value))) or "none"
                return None, (f"missing field {name!r} ({part!r} is not in {shown})",
                              f"fields of {shown}: {found}")  # fmt: skip
            value = value[part]
        elif isinstance(value, list):
            if not re.fullmatch(r"-?[0-9]+", part) or not -len(value) <= int(part) < len(value):
                first = f"{where}.0" if depth else "0"
                items = f"{len(value)} item" + ("" if len(value) == 1 else "s")
                missing = (f"missing field {name!r} ({shown} is a list of {items}, "
                           f"and {part!r} is not one of its positions)")  # fmt: skip
                return None, (missing, f"a list item is named by its position: {first} is first")
            value = value[int(part)]
        else:
            return None, (f"missing field {name!r} ({shown} is {json_kind(value)}, with no "
                          f"{part!r} inside)", f"{shown} holds {json_kind(value)}")  # fmt: skip
    return value, None


def json_kind(value: Any) -> str:
    """What a JSON value is, in words: "a number", "a list", "null", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    kinds = {int: "a number", float: "a number", str: "text", list: "a list", dict: "an object"}
    return kinds.get(type(value), type(value).__name__)


def record_id(line: Line, id_field: str = "id", *, flag: str | None = "--id-field") -> str:
    """The record's id as a string; ints are accepted (many datasets number their rows)."""
    value = require_field(line, id_field, flag=flag)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputError(
            f"{line.where}: field {id_field!r} must be a string or an integer, "
            f"got {json_kind(value)}",
            hint="ids join predictions to references, so they must be plain values",
        )
    return str(value)


def read_dataset(path: Path) -> Iterator[DatasetRecord]:
    """Stream the records of a dataset folder (or its metadata.jsonl), validating the contract
    (ids unique: they join predictions to references)."""
    jsonl = resolve_jsonl(path, role="dataset", flag="DATASET")
    seen: dict[str, int] = {}
    for line in iter_jsonl(jsonl):
        data = line.data
        rid = record_id(line, flag=None)
        if rid in seen:
            raise InputError(
                f"{line.where}: id {rid!r} appears twice (first at line {seen[rid]})",
                hint="ids join predictions to references, so each must be unique",
            )
        seen[rid] = line.number
        file_name = require_field(line, "file_name")
        escapes = not isinstance(file_name, str) or os.path.isabs(file_name)
        if escapes or ".." in Path(file_name).parts:
            raise InputError(
                f"{line.where}: file_name {file_name!r} must be a relative path inside the folder",
                hint="image paths are relative to the dataset folder and never use '..'",
            )
        meta = data.get("meta") or {}
        if not isinstance(meta, dict):
            raise InputError(
                f"{line.where}: meta must be a JSON object, got {type(meta).__name__}",
                hint='write meta as {"field": value, ...}',
            )
        answers = _answers(line)
        yield DatasetRecord(
            id=rid,
            file_name=file_name,
            task=str(data.get("task", "ocr")),
            prompt=str(data.get("prompt", "")),
            meta=meta,
            **answers,
            answers=acceptable_answers(line),
        )


PREFERENCE_FIELDS = ("chosen", "rejected")


def _answers(line: Line) -> dict[str, str | None]:
    """A record's `target`, or (a preference record) its `chosen` and `rejected`."""
    data = line.data
    if "target" not in data and all(name in data for name in PREFERENCE_FIELDS):
        return {
            "target": None,
            **{name: _text(data[name], line, name) for name in PREFERENCE_FIELDS},
        }
    if "target" not in data and any(name in data for name in PREFERENCE_FIELDS):
        missing = next(name for name in PREFERENCE_FIELDS if name not in data)
        raise InputError(
            f"{line.where}: a preference record needs both chosen and rejected (no {missing!r})",
            hint="write both answers, or a target instead",
        )
    return {"target": _text(require_field(line, "target"), line, "target")}


ANSWERS_FIELD = "answers"


def acceptable_answers(line: Line, field: str = ANSWERS_FIELD) -> tuple[str, ...] | None:
    """A record's list of acceptable answers (VQA), None where it has none; anything but a
    non-empty list of strings is an error naming the line."""
    value = field_value(line.data, field)
    if value is None:
        return None
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        if any(not item.strip() for item in value):
            raise InputError(
                f"{line.where}: {field!r} holds an empty answer",
                hint="drop it: an empty answer is in every prediction (OCRBench's rule)",
            )
        return tuple(value)
    if isinstance(value, list) and value:
        bad = next(item for item in value if not isinstance(item, str))
        what = f"holds {json_kind(bad)} ({json.dumps(bad, ensure_ascii=False)[:40]})"
    else:
        what = "is an empty list" if isinstance(value, list) else f"is {json_kind(value)}"
    raise InputError(
        f"{line.where}: {field!r} {what}, not a list of answer strings",
        hint='write every acceptable answer as a string: "answers": ["42", "forty-two"]',
    )


def _text(value: Any, line: Line, name: str) -> str:
    """An answer as text: a string, or a structured answer (a JSON object or list) as JSON text
    (not a Python repr). A number, a boolean or null is no answer to train or score on."""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    raise InputError(
        f"{line.where}: field {name!r} is {json_kind(value)}, not text",
        hint=f"write the {name} as a string (a structured answer as a JSON object)",
    )


def nearest_existing_parent(path: Path) -> Path:
    """The closest folder (or file) above `path` that exists: where it would be created."""
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    return ancestor


def check_writable(path: Path, flag: str) -> None:
    """Fail before any work when `path` cannot become an output file."""
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder", hint=f"give {flag} a file name")
    ancestor = nearest_existing_parent(path)
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
        raise UsageError(f"{flag} {path}: cannot write in {ancestor}", hint="choose another path")


def current_umask() -> int:
    """The process's umask (read by setting it, the only way POSIX offers)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def usual_permissions(folder: Path) -> None:
    """Give files under `folder` that a library saved as private (0600: written to a temporary
    file, then renamed, as transformers and safetensors do) the permissions of the umask."""
    mode = 0o666 & ~current_umask()
    for root, _, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            if path.stat().st_mode & 0o777 == 0o600 and mode != 0o600:
                path.chmod(mode)


@contextmanager
def atomic_output(path: Path) -> Iterator[TextIO]:
    """Open a temporary file beside `path`; rename it to `path` only if the block succeeds.

    A crash or Ctrl-C never leaves a half-written file under the final name, which keeps every
    output a valid Make target and never clobbers a previous good result.
    """
    if path.is_dir():
        raise InputError(f"cannot write {path}: it is a folder", hint="give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.chmod(tmp_name, 0o666 & ~current_umask())  # mkstemp's 0600 would hide it from others
    except OSError as exc:
        raise InputError(
            f"cannot write {path}: {exc.strerror}", hint="choose a writable output path"
        ) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_jsonl_atomic(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows as JSONL through `atomic_output`; return how many were written."""
    count = 0
    with atomic_output(path) as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write a JSON document (a sidecar, a manifest) through `atomic_output`, readable."""
    write_text_atomic(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write a text file through `atomic_output`."""
    with atomic_output(path) as out:
        out.write(text)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write a file's exact bytes through `atomic_output`."""
    with atomic_output(path) as out:
        out.buffer.write(data)
