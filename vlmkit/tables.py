"""Records from the files other tools write: JSONL, a JSON array, CSV, TSV and Excel.

Evaluation harnesses keep predictions in whatever their authors liked (VLMEvalKit an `.xlsx`
or `.tsv`, others a JSON array); each row becomes a `Line`, so every later check names its
file and row as it does for JSONL (`file.csv:12` is the file's line 12; `file.json:3` and
`file.xlsx:3` the third record below the header). Excel's cells are read as text, as CSV's
are; only the first sheet is read. The format comes from the extension, or from the content
where the extension says nothing (`.txt`, none); `--format` overrides both. Excel needs the
`tables` extra (openpyxl), imported only for an `.xlsx`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vlmkit.errors import InputError, MissingExtraError, UsageError
from vlmkit.records import Line, iter_jsonl

FORMATS = ("jsonl", "json", "csv", "tsv", "xlsx")
BY_SUFFIX = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv",
             ".tsv": "tsv", ".xlsx": "xlsx"}  # fmt: skip


def iter_records(path: Path, fmt: str | None = None) -> Iterator[Line]:
    """Each record of `path` as a `Line`, in file order."""
    kind = fmt or BY_SUFFIX.get(path.suffix.lower()) or _sniff(path)
    if kind not in FORMATS:
        raise UsageError(f"--format {kind!r} is not one of {', '.join(FORMATS)}")
    if kind == "jsonl":
        yield from iter_jsonl(path)
    elif kind == "json":
        yield from _json_array(path)
    elif kind in ("csv", "tsv"):
        yield from _delimited(path, "," if kind == "csv" else "\t")
    else:
        yield from _excel(path)


def _sniff(path: Path) -> str:
    """A file whose extension says nothing: JSONL when it starts with `{`, a JSON array with
    `[`; anything else is refused rather than guessed."""
    try:
        with open(path, "rb") as handle:  # its start only: a large file is read once, later
            head = handle.read(4096).decode("utf-8", errors="ignore").lstrip("\ufeff \t\r\n")
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}", hint="check the path") from None
    if head.startswith("{"):
        return "jsonl"
    if head.startswith("["):
        return "json"
    raise InputError(
        f"{path}: cannot tell its format from its name or content",
        hint=f"name it .jsonl, .json, .csv, .tsv or .xlsx, or pass --format ({', '.join(FORMATS)})",
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"{path} is not UTF-8 text ({error.reason})") from None
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}", hint="check the path") from None


def _json_array(path: Path) -> Iterator[Line]:
    text = _read(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        if error.msg == "Extra data" and text.lstrip().startswith("{"):
            yield from iter_jsonl(path)  # JSON Lines under a .json name (a common habit)
            return
        raise InputError(
            f"{path}: malformed JSON ({error.msg} at line {error.lineno}, column {error.colno})",
            hint="a .json file holds one array of records; JSON Lines go in .jsonl",
        ) from None
    if isinstance(data, dict):
        lists = [key for key, value in data.items() if isinstance(value, list)]
        hint = f" (its list is under {lists[0]!r})" if len(lists) == 1 else ""
        raise InputError(
            f"{path}: a JSON object, not an array of records{hint}",
            hint="give a file whose top level is [ {...}, {...} ], or JSON Lines",
        )
    if not isinstance(data, list):
        raise InputError(f"{path}: expected an array of records, got {type(data).__name__}")
    for number, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            raise InputError(
                f"{path}:{number}: record {number} is {type(item).__name__}, not an object",
                hint='each item of the array must look like {"id": ..., ...}',
            )
        yield Line(path, number, item)


def _delimited(path: Path, delimiter: str) -> Iterator[Line]:
    try:
        handle = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 (closed below)
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}", hint="check the path") from None
    # Streamed, not read whole: recognising a peer's file reads its first row only.
    # strict: a quote left open is an error, not the rest of the file in one cell.
    reader = csv.DictReader(handle, delimiter=delimiter, strict=True)
    try:
        if not reader.fieldnames:
            return
        _check_header(path, list(reader.fieldnames))
        for row in reader:
            if None in row:  # more cells than columns
                raise InputError(
                    f"{path}:{reader.line_num}: more cells than the {len(reader.fieldnames)} "
                    "columns of the header",
                    hint="quote cells that hold the delimiter",
                )
            yield Line(path, reader.line_num, {key: value for key, value in row.items() if key})
    except csv.Error as error:
        raise InputError(
            f"{path}:{reader.line_num}: not readable as {'CSV' if delimiter == ',' else 'TSV'} "
            f"({error})",
            hint="a quote opened in a cell must be closed; double a quote inside quotes",
        ) from None
    except UnicodeDecodeError as error:
        raise InputError(f"{path} is not UTF-8 text ({error.reason})") from None
    finally:
        handle.close()


def _check_header(path: Path, names: list[str]) -> None:
    seen = [name for name in names if name]
    twice = sorted({name for name in seen if seen.count(name) > 1})
    if twice:
        raise InputError(
            f"{path}: the column {twice[0]!r} is in the header twice",
            hint="name each column once: which one holds the value cannot be guessed",
        )


def _excel(path: Path) -> Iterator[Line]:
    try:
        import openpyxl
    except ModuleNotFoundError:
        raise MissingExtraError(
            f"{path} is an Excel file, and reading one needs openpyxl",
            hint="pip install 'vlmkit[tables]' (or save it as .tsv)",
        ) from None
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # zipfile.BadZipFile, KeyError on a broken package...
        raise InputError(f"{path} is not a readable .xlsx ({type(error).__name__})") from None
    try:
        rows = book.worksheets[0].iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            return
        names = [str(name) if name is not None else "" for name in header]
        _check_header(path, names)
        for number, row in enumerate(rows, start=1):
            if all(cell is None for cell in row):
                continue
            yield Line(path, number, {name: _cell(value) for name, value in zip(names, row,
                                      strict=False) if name})  # fmt: skip
    finally:
        book.close()


def _cell(value: Any) -> Any:
    """A cell as CSV would hold it: text. Excel stores whole numbers as floats, so 3.0 is
    "3" (an id, a counted answer); empty cells stay empty (None)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
