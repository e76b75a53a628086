"""Tables of images on disk (an image and other columns per row), read lazily.

Three layouts, the ways such a dataset is found on disk:
- `parquet`: the hub's layout, `data/{split}-*.parquet` (or the shards at the top);
- `save_to_disk`: a folder written by `datasets`' `save_to_disk` (a DatasetDict with
  `dataset_dict.json`, or one Dataset with `state.json`), Arrow stream files;
- `imagefolder`: `{split}/metadata.jsonl` with `file_name` and the columns beside the images
  (or `metadata.jsonl` at the top, split "train", as the imagefolder builder names it).

Which columns a row needs besides its image is the converter's (`Columns`): a Donut-format set
has `ground_truth`, a VQA set a question and its answers. Parquet and Arrow need pyarrow
(`pip install 'vlmkit[convert]'`); rows are decoded a few at a time from memory-mapped files, so
memory does not grow with the number of rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmkit.convert.base import (
    BadRow,
    ImageBytes,
    ImageFile,
    ImageRef,
    inside,
    unlabelled_images,
)
from vlmkit.errors import InputError, MissingExtraError


@dataclass(frozen=True)
class Columns:
    """The columns a row needs besides its image, each given as the names it may go by."""

    needed: tuple[tuple[str, ...], ...]
    what: str
    """What such a table is, for the error on a file without them."""

    def missing(self, names: Iterable[str]) -> list[str]:
        """The needed columns that `names` lacks, as messages name them."""
        have = set(names)
        return [" or ".join(group) for group in self.needed if not have.intersection(group)]

    @property
    def shown(self) -> str:
        return " + ".join(" or ".join(group) for group in self.needed)


DONUT_COLUMNS = Columns(
    (("ground_truth",),), "A Donut-format dataset has an image column and a ground_truth column."
)


def layouts(columns: Columns) -> tuple[str, ...]:
    """The accepted layouts of a table with `columns`, as shown when none matches."""
    return (
        f"parquet: data/{{split}}-*.parquet with image + {columns.shown} (the hub's layout)",
        "save_to_disk: a folder written by datasets' save_to_disk",
        f"imagefolder: {{split}}/metadata.jsonl with file_name + {columns.shown} beside the images",
    )


LAYOUTS = layouts(DONUT_COLUMNS)
PARQUET_BATCH = 16


@dataclass(frozen=True)
class TableRow:
    index: int
    """Position within the split, across shards in order."""
    where: str
    image: ImageRef
    values: dict[str, Any]
    """The row's other columns (for a Donut table, `ground_truth`)."""
    source_file: str | None
    """The image's file name in the source, when it has one."""
    key: str | None = None
    """The sample's own number when the layout names it (receipt_00007 -> 000007)."""


class Table:
    """One table of images on disk; `open_table` finds which layout it is."""

    def __init__(
        self,
        root: Path,
        layout: str,
        split_files: dict[str, list[Path]],
        columns: Columns = DONUT_COLUMNS,
    ) -> None:
        self.root = root
        self.layout = layout
        self.split_files = split_files
        self.columns = columns

    def splits(self) -> list[str]:
        return list(self.split_files)

    def rows(self, split: str) -> Iterator[TableRow | BadRow]:
        reader = {"parquet": _parquet_rows, "save_to_disk": _arrow_rows}.get(self.layout)
        index = 0
        for path in self.split_files[split]:
            if reader is None:
                rows = _imagefolder_rows(path, index, self.columns)
            else:
                rows = reader(path, self.root, index, self.columns)
            for row in rows:
                index += 1
                yield row


def number_key(stem: str) -> str:
    """A file's key: its trailing number (receipt_07 -> 000007, the hub's row), else its stem."""
    match = re.search(r"(\d+)$", stem)
    return f"{int(match.group(1)):06d}" if match else stem


Found = tuple[str, dict[str, list[Path]]]
"""A layout a finder recognised, and each split's files."""


def open_table(root: Path, columns: Columns = DONUT_COLUMNS) -> Table | None:
    """The layout of `root`, or None when it is none of `layouts(columns)`."""
    # Shards one folder down last: a save_to_disk or imagefolder layout is never mistaken.
    for finder in (_find_parquet, _find_save_to_disk, _find_imagefolder, _sub_folder_shards):
        found = finder(root)
        if found is not None:
            return Table(root, *found, columns)
    return None


def describe_folder(root: Path) -> str:
    """A short "what was found" for the unknown-layout error."""
    if not root.exists():
        return "it does not exist"
    if not root.is_dir():
        return "it is a file, not a folder"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    return f"found: {shown}" if names else "the folder is empty"


def _find_parquet(root: Path) -> Found | None:
    shards = sorted((root / "data").glob("*.parquet")) or sorted(root.glob("*.parquet"))
    if not shards:
        return None
    splits: dict[str, list[Path]] = {}
    for shard in shards:
        splits.setdefault(shard.name.split("-", 1)[0].split(".", 1)[0], []).append(shard)
    return "parquet", splits


SPLIT_NAMES = ("train", "validation", "val", "test", "dev", "eval")
"""Words a split folder or a shard's name starts with."""


def _sub_folder_shards(root: Path) -> Found | None:
    """Parquet shards one folder down: the hub's converted layout `{split}/0000.parquet` (a
    table), or a repository with several configurations, each in its own folder with
    `{split}-*.parquet` shards (lmms-lab/DocVQA: DocVQA/, InfographicVQA/), which one is the
    user's to say."""
    if not root.is_dir():
        return None
    folders = {sub.name: sorted(sub.glob("*.parquet")) for sub in sorted(root.iterdir())
               if sub.is_dir()}  # fmt: skip
    folders = {name: shards for name, shards in folders.items() if shards}
    if not folders:
        return None
    if all(name in SPLIT_NAMES for name in folders):
        return "parquet", folders
    named_by_split = all(shard.name.startswith(SPLIT_NAMES)
                         for shards in folders.values() for shard in shards)  # fmt: skip
    kind = "several configurations" if named_by_split else "several folders"
    raise InputError(
        f"{root}: holds the parquet shards of {kind} ({', '.join(folders)})",
        hint=f"Point SRC at the one to convert, e.g. {root / next(iter(folders))}.",
    )


def _find_save_to_disk(root: Path) -> Found | None:
    if (root / "dataset_dict.json").is_file():
        names = _read_json_file(root / "dataset_dict.json").get("splits", [])
        folders = {name: root / name for name in names}
    elif (root / "state.json").is_file():
        split = _read_json_file(root / "state.json").get("_split") or "train"
        folders = {split: root}
    else:
        return None
    splits = {}
    for name, folder in folders.items():
        state = _read_json_file(folder / "state.json")
        files = [folder / f["filename"] for f in state.get("_data_files", [])]
        for file in files:
            if not file.is_file():
                raise InputError(f"{file}: listed in {folder / 'state.json'} but missing")
        splits[name] = files
    return "save_to_disk", splits


def _find_imagefolder(root: Path) -> Found | None:
    if not root.is_dir():
        return None
    if (root / "metadata.jsonl").is_file():
        return "imagefolder", {"train": [root / "metadata.jsonl"]}
    splits = {
        sub.name: [sub / "metadata.jsonl"]
        for sub in sorted(root.iterdir())
        if sub.is_dir() and (sub / "metadata.jsonl").is_file()
    }
    return ("imagefolder", splits) if splits else None


def _read_json_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: cannot read it as JSON ({error})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise MissingExtraError(
            "reading parquet or Arrow files needs pyarrow",
            hint="pip install 'vlmkit[convert]'",
        ) from None
    return pyarrow


def _parquet_rows(
    path: Path, root: Path, start: int, columns: Columns
) -> Iterator[TableRow | BadRow]:
    pa = _pyarrow()
    with _arrow_errors(pa, path, "parquet file", "Download the shard again: it is truncated."):
        # pre_buffer=False: with it, pyarrow keeps every buffered row group (memory grew with N).
        shard = pa.parquet.ParquetFile(path, pre_buffer=False)
        _check_columns(path, shard.schema_arrow, columns)
        batches = shard.iter_batches(batch_size=PARQUET_BATCH)
        yield from _batch_rows(batches, path, root, start, columns)


def _arrow_rows(
    path: Path, root: Path, start: int, columns: Columns
) -> Iterator[TableRow | BadRow]:
    pa = _pyarrow()
    with _arrow_errors(pa, path, "Arrow file", "Write it again with save_to_disk: it is damaged."):
        reader = pa.ipc.open_stream(pa.memory_map(str(path)))
        _check_columns(path, reader.schema, columns)
        yield from _batch_rows(reader, path, root, start, columns)


def _batch_rows(
    batches: Iterable[Any], path: Path, root: Path, start: int, columns: Columns
) -> Iterator[TableRow | BadRow]:
    # A batch can hold up to 1,000 rows (save_to_disk): decode them to Python one at a time.
    offset = 0
    for batch in batches:
        # A damaged file can decode into offsets that point anywhere: checked before any row
        # is read (unchecked, pyarrow raised UnicodeDecodeError, or crashed the process).
        batch.validate(full=True)
        for i in range(batch.num_rows):
            [row] = batch.slice(i, 1).to_pylist()
            where = f"{path.name} row {offset + i}"
            yield _table_row(row, where, start + offset + i, root, columns)
        offset += batch.num_rows


@contextmanager
def _arrow_errors(pa: Any, path: Path, what: str, hint: str) -> Iterator[None]:
    try:
        yield
    except (pa.ArrowException, OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read this {what} ({error})", hint=hint) from None


def _check_columns(path: Path, schema: Any, columns: Columns) -> None:
    """A file without the needed columns, or whose image column holds no images, is the wrong
    file, not a file of bad rows."""
    names = list(schema.names)
    missing = ([] if "image" in names else ["image"]) + columns.missing(names)
    if missing:
        raise InputError(
            f"{path}: no column {', '.join(missing)} (it has {', '.join(names)})",
            hint=columns.what,
        )
    image = schema.field("image").type
    fields = {image.field(i).name for i in range(image.num_fields)} if image.num_fields else set()
    if not {"bytes", "path"} & fields:
        raise InputError(
            f"{path}: its image column is {image}, not images (a struct of bytes and path, as "
            "datasets writes them)",
            hint="Write the table with datasets' Image feature (cast_column('image', Image())).",
        )


def _table_row(
    row: dict[str, Any], where: str, index: int, root: Path, columns: Columns
) -> TableRow | BadRow:
    missing = ([] if "image" in row else ["image"]) + columns.missing(row)
    if missing:
        return BadRow(where, f"needs columns {', '.join(missing)}, has {sorted(row)}")
    image = row.pop("image")
    if not isinstance(image, dict):
        return BadRow(where, "the image column is not an image (bytes + path)", "bad image")
    name = image.get("path")
    if image.get("bytes"):
        return TableRow(index, where, ImageBytes(image["bytes"], name), row, name)
    # Without bytes the row points at a file, which must be inside the dataset's folder.
    path = inside(root, name) if isinstance(name, str) else None
    if path is None:
        return BadRow(where, f"the image has no bytes, and its path {name!r} is not inside "
                      f"{root}", "bad image path")  # fmt: skip
    return TableRow(index, where, ImageFile(path), row, name)


def _imagefolder_rows(metadata: Path, start: int, columns: Columns) -> Iterator[TableRow | BadRow]:
    from vlmkit.records import LineError, iter_jsonl_lenient

    folder = metadata.parent
    named = set()
    for offset, line in enumerate(iter_jsonl_lenient(metadata)):
        if isinstance(line, LineError):
            yield BadRow(line.where, line.reason, "bad row")
            continue
        where = line.where
        data = line.data
        missing = ([] if "file_name" in data else ["file_name"]) + columns.missing(data)
        if missing:
            yield BadRow(where, f"needs {' and '.join(missing)}", "bad row")
            continue
        name = str(data["file_name"])
        path = inside(folder, name)
        if path is None:
            yield BadRow(where, f"file_name {name!r} leaves the dataset folder", "bad image path")
            continue
        named.add(path)
        key = number_key(Path(name).stem)
        values = {column: value for column, value in data.items() if column != "file_name"}
        yield TableRow(start + offset, where, ImageFile(path), values, name, key)
    why = f"no {metadata.name} row names it"
    yield from unlabelled_images(folder, named, folder.parent, why, recursive=True)
