"""An output is never an input: every writing command checks its paths here before any work.

A command's output replaces whatever has its name (atomically, but still), so `score P R
--json P` would turn the predictions into scores and `finetune DS -o DS/run` would put an
adapter inside the training set. Each output is compared with each input after resolving
links: the same file (or a hard link to it), an output inside an input folder, and an input
inside an output folder (which `--overwrite` would delete) are all refused, naming both.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from vlmkit.errors import UsageError

Named = tuple[str, "Path | str | None"]
"""A path and how the user gave it: a flag (`--json`) or an argument's name (`PREDS`)."""

HINT = "write outputs somewhere else: vlmkit never writes over or into what it reads"


def refuse_overlaps(outputs: Iterable[Named], inputs: Iterable[Named]) -> None:
    """Raise `UsageError` when an output would overwrite, or land inside, an input (or another
    output); `None`, `-` (stdout) and hub ids (paths that do not exist) are skipped as inputs."""
    outs = [(flag, Path(path)) for flag, path in outputs if _is_path(path)]
    ins = [(flag, Path(path)) for flag, path in inputs if _is_path(path) and Path(path).exists()]
    for out_flag, out in outs:
        for in_flag, source in ins:
            relation = _relation(out, source)
            if relation is not None:
                raise UsageError(
                    relation.format(out=f"{out_flag} {out}", source=f"{in_flag} {source}"),
                    hint=HINT,
                )
    for i, (first_flag, first) in enumerate(outs):
        for second_flag, second in outs[i + 1 :]:
            if _relation(first, second) == _SAME:
                raise UsageError(
                    f"{first_flag} {first} and {second_flag} {second} are the same file",
                    hint="give each output its own name",
                )


def image_folders(dataset: Path, images: Iterable[Path]) -> list[Named]:
    """The folders a dataset's images really live in, when a link takes them outside it."""
    inside = dataset.resolve()
    folders = {Path(image).resolve().parent for image in images}
    outside = sorted(f for f in folders if f != inside and inside not in f.parents)
    return [("the folder of DATASET's images", folder) for folder in outside]


def dataset_image_folders(dataset: Path, flag: str) -> list[Named]:
    """The dataset folder a REFS path names, and where its images really live (read from its
    metadata.jsonl; a line that cannot be read names no image)."""
    folder = dataset if dataset.is_dir() else dataset.parent
    metadata = folder / "metadata.jsonl"
    if not metadata.is_file() or (dataset.is_file() and dataset.name != metadata.name):
        return []
    names = []
    with open(metadata, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            try:
                name = json.loads(line).get("file_name")
            except (ValueError, AttributeError):
                continue
            if isinstance(name, str) and name:
                names.append(folder / name)
    return [(f"the dataset of {flag}", folder), *image_folders(folder, names)]


def _is_path(path: Path | str | None) -> bool:
    return path is not None and str(path) not in ("", "-")


_SAME = "{out} would overwrite {source}"
_INSIDE = "{out} would be written inside {source}"
_OVER_INSIDE = "{out} would overwrite a file inside {source}"
_HOLDS = "{out} holds {source} (an output folder may not hold an input)"


def _relation(out: Path, source: Path) -> str | None:
    """How output `out` collides with input `source` (a message template), or None."""
    a, b = out.resolve(), source.resolve()
    if a == b or _same_inode(out, source):
        return _SAME
    if b in a.parents and source.is_dir():
        return _OVER_INSIDE if out.exists() else _INSIDE
    if a in b.parents:
        return _HOLDS
    return None


def _same_inode(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return False
