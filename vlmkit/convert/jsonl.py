"""`jsonl`: the JSONL files other fine-tuning projects train on, one file per split.

Each line is read in the first form that fits it:
- Roboflow's PaliGemma export: `{"image": "x.jpg", "prefix": question, "suffix": answer}`;
- chat rows, LLaVA/ShareGPT `conversations` (`from`/`value`, `<image>` in the text) or
  `messages` (`role`/`content`, content a string or a list of parts) with `image`/`images`:
  the first user turn is the prompt, the first assistant turn after it the target;
- any row, with `--image-field`, `--prompt-field`, `--target-field` naming the fields.
Image paths are relative to the JSONL file and must stay inside SRC; `data:image/...;base64,`
URLs are decoded. With `--task json` the target is read as structured (JSON, a Python dict,
Donut tokens or kv lines) and written canonically in `--target-format`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from vlmkit.convert.base import (
    BadRow,
    Converter,
    ImageBytes,
    ImageFile,
    ImageRef,
    SourceRow,
    inside,
)
from vlmkit.convert.tables import describe_folder
from vlmkit.errors import UsageError
from vlmkit.records import LineError, iter_jsonl_lenient
from vlmkit.structured import parse_structured

_DATA_URL = re.compile(r"^data:image/[\w.+-]+;base64,", re.IGNORECASE)
_SPLIT_NAME = re.compile(r"^(?:_annotations\.)?(?P<split>[^.]+)(?:\.[^.]+)*$")
USER_ROLES = {"user", "human"}
# Readers that take the whole text as the answer; "fenced" and "braces" dig an object out of
# surrounding chatter, which a training target must not have.
WHOLE_TEXT_METHODS = {"json", "python", "donut", "kv"}
ASSISTANT_ROLES = {"assistant", "gpt", "bot", "model"}


@dataclass(frozen=True)
class FieldMap:
    """--image-field / --prompt-field / --target-field: a generic row's fields."""

    image: str | None = None
    prompt: str | None = None
    target: str | None = None

    @property
    def given(self) -> bool:
        return any((self.image, self.prompt, self.target))


class JsonlConverter(Converter):
    name: ClassVar[str] = "jsonl"
    tasks: ClassVar[tuple[str, ...]] = ("ocr", "json", "letter")
    prompts: ClassVar[dict[str, str]] = {"ocr": "", "json": "", "letter": ""}
    """Rows bring their own prompts; these stand in only when a row has none."""
    layouts: ClassVar[tuple[str, ...]] = (
        "a .jsonl file (one split, named after it: _annotations.train.jsonl -> train)",
        "a folder of .jsonl files, one per split",
    )

    def __init__(self, src: str, task: str | None = None, fields: FieldMap | None = None) -> None:
        super().__init__(src, task)
        self.fields = fields or FieldMap()
        if self.fields.given and not (self.fields.image and self.fields.target):
            raise UsageError(
                "--image-field and --target-field go together (--prompt-field is optional)",
                hint="e.g. --image-field img --target-field text",
            )
        root = Path(src)
        files = [root] if root.is_file() else sorted(root.glob("*.jsonl")) if root.is_dir() else []
        if not files:
            raise self.unknown_layout(describe_folder(root))
        self.files = {}
        for file in files:
            match = _SPLIT_NAME.match(file.name)
            split = match.group("split") if match else file.stem
            if split in self.files:
                raise UsageError(f"{src}: two files give the split {split!r}")
            self.files[split] = file
        self.layout = "jsonl"

    def splits(self) -> list[str]:
        return list(self.files)

    def rows(self, split: str) -> Iterator[SourceRow | BadRow]:
        path = self.files[split]
        for index, line in enumerate(iter_jsonl_lenient(path)):
            if isinstance(line, LineError):
                yield BadRow(line.where, line.reason, "bad row")
                continue
            read = self._read(line.data)
            if isinstance(read, str):
                yield BadRow(line.where, read, "bad row")
                continue
            image_value, prompt, target = read
            image = self._image(image_value, path.parent)
            if isinstance(image, str):
                yield BadRow(line.where, image, "bad image path")
                continue
            meta: dict[str, Any] = {"row": index}
            if self.task == "json":
                parsed = parse_structured(target)
                if parsed.method not in WHOLE_TEXT_METHODS:
                    if parsed.value is None:
                        reason = "the target is not JSON (nor a Python dict, Donut tokens or kv)"
                    else:
                        reason = f"the target has text around its {parsed.method} structured part"
                    yield BadRow(line.where, reason, "bad ground truth")
                    continue
                target = parsed.value
                meta["target_read_as"] = parsed.method
            if isinstance(line.data.get("id"), (str, int)):
                # Always text: ids 1 and "r-3" in one file would give the column two types,
                # which `datasets.load_dataset("imagefolder")` refuses (ArrowInvalid).
                meta["source_id"] = str(line.data["id"])
            yield SourceRow(f"{index:06d}", line.where, image, target, meta, prompt)

    def _read(self, row: dict[str, Any]) -> tuple[Any, str, str] | str:
        """(image value, prompt, target) of a row, or why it cannot be read."""
        if self.fields.given:
            return _generic(row, self.fields)
        if "messages" in row or "conversations" in row:
            return _chat(row)
        if {"image", "suffix"} <= row.keys():
            return row["image"], str(row.get("prefix", "")), str(row["suffix"])
        return (
            "neither a PaliGemma row (image, prefix, suffix) nor a chat row (messages or "
            "conversations); name its fields with --image-field and --target-field"
        )

    def _image(self, value: Any, folder: Path) -> ImageRef | str:
        if not isinstance(value, str) or not value:
            return f"the image is {value!r}, not a path"
        if _DATA_URL.match(value):
            try:
                return ImageBytes(base64.b64decode(value.split(",", 1)[1], validate=True))
            except (binascii.Error, ValueError):
                return "the image data URL is not valid base64"
        # Relative to the JSONL file's folder; an absolute path is fine if it points inside it.
        relative = value
        if Path(value).is_absolute():
            try:
                relative = str(Path(value).resolve().relative_to(folder.resolve()))
            except ValueError:
                return f"the image path {value!r} is absolute and outside {folder}"
        path = inside(folder, relative)
        if path is None:
            return f"the image path {value!r} leaves {folder}"
        return ImageFile(path)


def _generic(row: dict[str, Any], fields: FieldMap) -> tuple[Any, str, str] | str:
    missing = [f for f in (fields.image, fields.target) if f and f not in row]
    if missing:
        return f"no field {missing[0]!r} (it has {', '.join(map(str, row))})"
    prompt = str(row.get(fields.prompt, "")) if fields.prompt else ""
    return row[fields.image], prompt, _text(row[fields.target])


def _chat(row: dict[str, Any]) -> tuple[Any, str, str] | str:
    turns = row.get("messages") or row.get("conversations")
    if not isinstance(turns, list):
        return "messages/conversations is not a list of turns"
    prompt = target = None
    for turn in turns:
        if not isinstance(turn, dict):
            return "a turn is not an object"
        role = str(turn.get("role", turn.get("from", ""))).lower()
        text = _content_text(turn.get("content", turn.get("value", "")))
        if prompt is None and role in USER_ROLES:
            prompt = text
        elif prompt is not None and role in ASSISTANT_ROLES:
            target = text
            break
    if prompt is None or target is None:
        return "no user turn followed by an assistant turn"
    images = row.get("images")
    image = images[0] if isinstance(images, list) and images else row.get("image")
    if isinstance(image, dict):  # {"path": ...} or {"url": ...}
        image = image.get("path") or image.get("url")
    return image, prompt.replace("<image>", "").strip(), target


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "image"}, {"type": "text", "text": ...}]
        return "\n".join(
            str(part.get("text", "")) for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )  # fmt: skip
    return str(content)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
