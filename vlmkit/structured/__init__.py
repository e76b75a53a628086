"""Read model outputs and targets back as JSON-like values, leniently, recording how.

`parse_structured` tries the readers in `PARSE_METHODS` order and keeps the first that yields a
dict or a list:

* ``json``: the whole text, stripped, is one strict JSON object or array (what `is_strict_json`
  accepts: RFC 8259, so no ``NaN``/``Infinity``).
* ``fenced``: the first Markdown code block (```` ```json ```` or bare ```` ``` ````; an unclosed
  block runs to the end of the text) whose content is a JSON object or array.
* ``braces``: the largest outermost balanced ``{...}``/``[...]`` span, found with awareness of
  double-quoted strings, that is a JSON object or array (see `_candidate_spans`).
* ``python``: the largest such span (quotes ``'`` and ``"``) that is a Python literal dict or
  list, as ``str(dict)`` writes it (single quotes, ``True``, ``None``, trailing commas).
  Tuples become lists and non-string keys their JSON text (as `json.dumps` does); sets, bytes
  and complex numbers are rejected, since JSON has nothing that keeps their meaning.
* ``donut``: Donut's ``<s_key>value</s_key>`` sequences, read as Donut's ``token2json`` reads
  them (see `from_donut_tokens`); it counts when at least one key was read.
* ``kv``: vlmkit's ``path: value`` lines (see `from_kv_lines`). Coming last, it loses a text
  whose value holds a JSON array or object (``tags: [1, 2]`` reads as braces): read a text known
  to be kv with `from_kv_lines` itself.
* ``none``: nothing was recovered; the value is None.

The lenient JSON readers (``fenced``, ``braces``) accept Python's extensions ``NaN`` and
``Infinity``; only ``json`` is strict, so the method says whether the output was valid as it stood.
No reader raises on any text: one that cannot read returns nothing and the next one runs. Scans
are linear in the text (Donut's reading is capped), so a long garbage generation costs little.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vlmkit.structured.donut import _read_donut, from_donut_tokens, to_donut_tokens
from vlmkit.structured.kv import from_kv_lines, to_kv_lines

__all__ = [
    "PARSE_METHODS",
    "Parsed",
    "from_donut_tokens",
    "from_kv_lines",
    "is_strict_json",
    "parse_structured",
    "to_donut_tokens",
    "to_kv_lines",
    "within_depth",
]

PARSE_METHODS = ("json", "fenced", "braces", "python", "donut", "kv", "none")


@dataclass(frozen=True)
class Parsed:
    """A text read back as a JSON-like value, and the method that read it."""

    value: Any
    """A dict or a list; None when no method could read the text."""
    method: str
    """One of `PARSE_METHODS`."""


# Deeper than any real document; the tree metrics recurse, so deeper values count as unread.
MAX_NESTING = 100


def parse_structured(text: str) -> Parsed:
    """Read `text` with the first method in `PARSE_METHODS` that yields a dict or a list."""
    for method, reader in _READERS:
        value = reader(text)
        if value is not None and within_depth(value):
            return Parsed(value, method)
    return Parsed(None, "none")


def within_depth(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether dicts and lists nest at most `limit` levels deep (checked without recursion)."""
    if not isinstance(value, (dict, list)):
        return True
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return False
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return True


def is_strict_json(text: str) -> bool:
    """Whether the whole text (surrounding whitespace allowed) is one JSON object or array."""
    return _read_json(text) is not None


# --------------------------------------------------------------------------- JSON readers


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_STRICT_JSON = json.JSONDecoder(parse_constant=_reject_constant)
_LENIENT_JSON = json.JSONDecoder()


def _decode(decoder: json.JSONDecoder, text: str) -> dict | list | None:
    """`text` as a JSON object or array, or None; scalars do not count as structured."""
    try:
        value = decoder.decode(text)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return None
    return value if isinstance(value, (dict, list)) else None


def _read_json(text: str) -> dict | list | None:
    stripped = text.strip()
    # Checking the first character keeps prose, the common failure, off the decoder.
    if stripped[:1] not in ("{", "["):
        return None
    return _decode(_STRICT_JSON, stripped)


_FENCE_OPEN = re.compile(r"```[ \t]*[\w+.-]*[ \t]*\r?\n")


def _read_fenced(text: str) -> dict | list | None:
    pos = 0
    while (opening := _FENCE_OPEN.search(text, pos)) is not None:
        close = text.find("```", opening.end())
        # An unclosed block runs to the end: a generation cut off after its JSON still counts.
        end = len(text) if close < 0 else close
        value = _decode(_LENIENT_JSON, text[opening.end() : end].strip())
        if value is not None:
            return value
        pos = end + 3
    return None


# --------------------------------------------------------------------------- bracket spans

# A `[` right after a word or a closing bracket is a subscript (`menu[0]` in kv lines, `x[1]` in
# prose about code), not the start of a value. `{` has no such use and may follow a word, as in
# "```json{...}```".
_OPENER = re.compile(r"(?<![\w\])])\[|\{")
_STOPS = {'"': re.compile(r'[{}\[\]"]'), "\"'": re.compile(r"""[{}\[\]"']""")}
# The unrolled form has no nested quantifier to backtrack over, so a failed match stays linear.
_STRING_TAIL = {
    '"': re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL),
    "'": re.compile(r"[^'\\]*(?:\\.[^'\\]*)*'", re.DOTALL),
}
_MATCHING = {"}": "{", "]": "["}


def _candidate_spans(text: str, quotes: str) -> list[tuple[int, int]]:
    """The outermost bracket spans, largest first (left to right among equals).

    The payload of a chatty answer is nearly always its largest structure; taking the first
    span instead would read "see [1] below: {...}" as ``[1]``.
    """
    return sorted(_outer_spans(text, quotes), key=lambda span: span[0] - span[1])


def _outer_spans(text: str, quotes: str) -> list[tuple[int, int]]:
    """(start, end) of the outermost balanced bracket spans, left to right, in one pass.

    Quotes only open strings inside a bracket, so an apostrophe in the prose around the value
    does not hide it. Only brackets that close at the outermost level make a span, and a closer
    that does not match the open bracket is ignored: a truncated or broken value therefore
    yields nothing rather than one of its inner objects, which would look valid but misplace
    every field. The price is that a bracket left open in the prose before a value hides it.
    """
    if "{" not in text and "[" not in text:
        return []
    stops = _STOPS[quotes]
    spans: list[tuple[int, int]] = []
    stack: list[str] = []
    start = pos = 0
    while True:
        found = (stops if stack else _OPENER).search(text, pos)
        if found is None:
            break
        char, pos = found.group(), found.end()
        if char in "{[":
            if not stack:
                start = found.start()
            stack.append(char)
        elif char in quotes:
            tail = _STRING_TAIL[char].match(text, pos)
            if tail is None:  # an unclosed string runs to the end: nothing more can close
                break
            pos = tail.end()
        elif stack[-1] == _MATCHING[char]:
            stack.pop()
            if not stack:
                spans.append((start, pos))
    return spans


def _read_braces(text: str) -> dict | list | None:
    first = _OPENER.search(text)
    if first is None:
        return None
    # The common chatty answer holds one JSON value: decode it where it starts, which is what
    # the span scan would find when no other bracket follows it, at C speed.
    try:
        value, end = _LENIENT_JSON.raw_decode(text, first.start())
    except (ValueError, RecursionError):
        pass
    else:
        if isinstance(value, (dict, list)) and _OPENER.search(text, end) is None:
            return value
    for start, end in _candidate_spans(text, quotes='"'):
        value = _decode(_LENIENT_JSON, text[start:end])
        if value is not None:
            return value
    return None


# --------------------------------------------------------------------------- Python literals


def _read_python(text: str) -> dict | list | None:
    for start, end in _candidate_spans(text, quotes="\"'"):
        try:
            value = _json_like(ast.literal_eval(text[start:end]))
        except Exception:  # literal_eval raises many types (TypeError for {[]: 1}, MemoryError)
            continue
        if isinstance(value, (dict, list)):
            return value
    return None


def _json_like(value: Any) -> Any:
    """A Python literal as the value `json.loads(json.dumps(value))` would give, or ValueError."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_like(item) for item in value]
    if isinstance(value, dict):
        return {_json_key(key): _json_like(item) for key, item in value.items()}
    raise ValueError(f"{type(value).__name__} has no JSON counterpart")


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(key)
    raise ValueError(f"a {type(key).__name__} key has no JSON counterpart")


_READERS: tuple[tuple[str, Callable[[str], dict | list | None]], ...] = (
    ("json", _read_json),
    ("fenced", _read_fenced),
    ("braces", _read_braces),
    ("python", _read_python),
    ("donut", _read_donut),
    ("kv", from_kv_lines),
)
