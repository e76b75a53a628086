"""vlmkit's `path: value` lines (`menu[0].nm: -TICKET CP`), both ways.

Split out of `vlmkit.structured`, which tries `from_kv_lines` as its last lenient reader.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

# A key segment: no path syntax (. [ ]), no ':' and none of the characters that start JSON,
# Python or Donut values, so a truncated JSON line such as `{"a": "b` is not read as kv.
_SEGMENT = r"[^\s.:\[\]{}\"<>`](?:[^.:\[\]{}\"<>`\r\n]*[^\s.:\[\]{}\"<>`])?"
# Indexes are ASCII digits and short: int() refuses strings of over 4300 digits.
_INDEX = r"\[[0-9]{1,9}\]"
_PATH = re.compile(rf"(?:{_SEGMENT}|{_INDEX})(?:\.{_SEGMENT}|{_INDEX})*")
_SEGMENT_ONLY = re.compile(_SEGMENT)
_PATH_PART = re.compile(r"\[([0-9]+)\]|([^.\[\]]+)")


def to_kv_lines(obj: dict | list) -> str:
    """Write `obj` as ``path: value`` lines that `from_kv_lines` reads back equal to `obj`.

    One line per leaf, in order: dict keys are joined by ``.``, list items are ``[i]``
    (``menu[0].nm: -TICKET CP``). Raises ValueError, naming the path, for what would not come
    back equal: leaves that are not strings, strings with a line break, empty dicts or lists
    (they have no leaf), and keys that are empty, have surrounding whitespace, or contain
    ``. : [ ] { } " < >`` or a backtick.
    """
    if not isinstance(obj, (dict, list)):
        raise ValueError(f"kv needs a dict or a list at the top, not {type(obj).__name__}")
    lines: list[str] = []
    _kv_write(obj, "", lines)
    return "\n".join(lines)


def _kv_write(value: Any, path: str, lines: list[str]) -> None:
    where = path or "the top"
    if isinstance(value, dict):
        if not value:
            raise ValueError(f"kv cannot write the empty dict at {where}")
        for key, item in value.items():
            if not isinstance(key, str) or _SEGMENT_ONLY.fullmatch(key) is None:
                raise ValueError(f"kv cannot write the key {key!r} at {where}")
            _kv_write(item, f"{path}.{key}" if path else key, lines)
    elif isinstance(value, list):
        if not value:
            raise ValueError(f"kv cannot write the empty list at {where}")
        for index, item in enumerate(value):
            _kv_write(item, f"{path}[{index}]", lines)
    elif isinstance(value, str):
        if "\n" in value or "\r" in value:
            raise ValueError(f"kv cannot write a line break in the value at {where}")
        lines.append(f"{path}: {value}" if value else f"{path}:")
    else:
        raise ValueError(f"kv keeps values as strings; {where} holds a {type(value).__name__}")


def from_kv_lines(text: str) -> dict | list | None:
    """Read ``path: value`` lines (see `to_kv_lines`), or None if the text is not kv.

    Every non-blank line must be ``path: value`` and there must be at least one. The value is
    the rest of the line after the first ``:`` minus one space, kept as a string; a path may be
    indented and spaced from its ``:``. Leniencies for model output: list indexes need not start
    at 0 or be contiguous (items keep the order they first appear in); a path repeated on a
    string leaf gathers its values into a list; a line that contradicts an earlier one (a leaf
    where a dict is, a key where a list is) is ignored.
    """
    entries = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        path, colon, value = line.rstrip("\r").partition(":")
        path = path.strip()
        if not colon or _PATH.fullmatch(path) is None:
            return None
        parts = [int(index) if index else key for index, key in _PATH_PART.findall(path)]
        entries.append((parts, value[1:] if value[:1] == " " else value))
    if not entries:
        return None
    tree = _KvTree(entries[0][0][0])
    for parts, value in entries:
        tree.put(parts, value)
    return tree.root


class _KvTree:
    """The value kv lines build; lists map the indexes written to the positions kept."""

    def __init__(self, first_part: str | int) -> None:
        self.root: dict | list = [] if isinstance(first_part, int) else {}
        self.positions: dict[int, dict[int, int]] = {}  # id(list) -> written index -> position
        self.gathered: set[int] = set()  # ids of the lists made by repeating a path

    def put(self, parts: list[str | int], value: str) -> None:
        node: Any = self.root
        for part, after in pairwise(parts):
            node = self._child(node, part, [] if isinstance(after, int) else {})
            if node is None:
                return
        self._put_leaf(node, parts[-1], value)

    def _slot(self, node: Any, part: str | int) -> tuple[Any, Any] | None:
        """(container, key) where `part` lives in `node`, or None when the kinds disagree."""
        if isinstance(node, dict) and isinstance(part, str):
            return node, part
        if isinstance(node, list) and isinstance(part, int):
            positions = self.positions.setdefault(id(node), {})
            if part not in positions:
                positions[part] = len(node)
                node.append(None)  # a placeholder the caller fills at once
            return node, positions[part]
        return None

    def _child(self, node: Any, part: str | int, empty: dict | list) -> Any:
        slot = self._slot(node, part)
        if slot is None:
            return None
        container, key = slot
        current = container.get(key) if isinstance(container, dict) else container[key]
        if current is None:
            container[key] = empty
            return empty
        if type(current) is type(empty) and id(current) not in self.gathered:
            return current
        return None

    def _put_leaf(self, node: Any, part: str | int, value: str) -> None:
        slot = self._slot(node, part)
        if slot is None:
            return
        container, key = slot
        current = container.get(key) if isinstance(container, dict) else container[key]
        if current is None:
            container[key] = value
        elif isinstance(current, str):
            gathered = [current, value]
            self.gathered.add(id(gathered))
            container[key] = gathered
        elif id(current) in self.gathered:
            current.append(value)
