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
from functools import lru_cache
from itertools import pairwise
from typing import Any

__all__ = [
    "PARSE_METHODS",
    "Parsed",
    "from_donut_tokens",
    "from_kv_lines",
    "is_strict_json",
    "parse_structured",
    "to_donut_tokens",
    "to_kv_lines",
]

PARSE_METHODS = ("json", "fenced", "braces", "python", "donut", "kv", "none")


@dataclass(frozen=True)
class Parsed:
    """A text read back as a JSON-like value, and the method that read it."""

    value: Any
    """A dict or a list; None when no method could read the text."""
    method: str
    """One of `PARSE_METHODS`."""


def parse_structured(text: str) -> Parsed:
    """Read `text` with the first method in `PARSE_METHODS` that yields a dict or a list."""
    for method, reader in _READERS:
        value = reader(text)
        if value is not None:
            return Parsed(value, method)
    return Parsed(None, "none")


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


# --------------------------------------------------------------------------- Donut tokens

_MAX_DONUT_DEPTH = 100
_DONUT_BUDGET = 20_000_000
_SPACES = re.compile(r"\s*")
_TAGGED_FLAGS = re.IGNORECASE | re.DOTALL
_DONUT_START = re.compile(r"<s_(.*?)>", re.IGNORECASE)
_DONUT_END = re.compile(r"</s_", re.IGNORECASE)
_SEP = "<sep/>"


def to_donut_tokens(obj: Any) -> str:
    """Serialise `obj` as Donut's ``json2token`` does with ``sort_json_key=False``.

    Dicts become ``<s_key>...</s_key>`` in their own key order, list items are joined by
    ``<sep/>``, other values by ``str()``; a dict whose only key is ``text_sequence`` stands for
    its text. Deviations: no tokenizer, so no ``<value/>`` categorical tokens; dict and list
    subclasses and tuples are containers (Donut tests ``type(obj) == dict``).

    The format cannot keep everything, so `from_donut_tokens` returns something else for: non-str
    leaves (``1`` comes back ``"1"``), empty dicts and lists (``""``), one-item lists (the item),
    nested lists (flattened), lists mixing strings and dicts, leaves with surrounding whitespace,
    ``<sep/>`` or tag-like text, keys containing ``>``, and a key anywhere under a key of the
    same name.
    """
    if isinstance(obj, dict):
        if len(obj) == 1 and "text_sequence" in obj:
            return str(obj["text_sequence"])
        return "".join(f"<s_{key}>{to_donut_tokens(value)}</s_{key}>" for key, value in obj.items())
    if isinstance(obj, (list, tuple)):
        return _SEP.join(to_donut_tokens(item) for item in obj)
    return str(obj)


def from_donut_tokens(text: str) -> Any:
    """Read a Donut token sequence as Donut's ``token2json`` does, partial results included.

    A key whose closing tag never comes (a truncated generation) is dropped and its content read
    as if it were at the level above; a leaf split by ``<sep/>`` is a list of strings; items of a
    list of dicts are joined by ``<sep/>``, so a sequence that continues after a ``<sep/>`` at the
    top reads as a list. When no key can be read the result is ``{"text_sequence": <rest>}``, as
    in Donut. Deviations, for robustness: keys are matched literally (Donut builds a regex from
    the key, so ``<s_a(b>`` raises there); values may span lines (Donut's ``.`` stops at a
    newline and drops the key); ``<value/>`` leaves are kept as they are (Donut unwraps those in
    its tokenizer's vocabulary, which a reader without the tokenizer cannot know); lists are read
    with a loop, not one recursion per item; nesting deeper than 100 is read as leaf text; reading
    stops after scanning 20 million characters (see `_DonutReader`).
    """
    value, rest = _DonutReader().read(text)
    return {"text_sequence": rest} if value is None else value


def _read_donut(text: str) -> dict | list | None:
    # Without a closing tag token2json can only read nothing, so skip its work.
    if _DONUT_END.search(text) is None or _DONUT_START.search(text) is None:
        return None
    return _DonutReader().read(text)[0]


# Donut builds these regexes per key; caching them halves the time of a typical receipt.
@lru_cache(maxsize=1024)
def _end_tag(key: str) -> re.Pattern[str]:
    return re.compile(f"</s_{re.escape(key)}>", re.IGNORECASE)


@lru_cache(maxsize=1024)
def _tagged(start_token: str, end_token: str) -> re.Pattern[str]:
    return re.compile(f"{re.escape(start_token)}(.*?){re.escape(end_token)}", _TAGGED_FLAGS)


class _DonutReader:
    """Donut's token2json on one text, scanning at most `_DONUT_BUDGET` characters.

    Donut slices and rescans the string once per key, so its cost grows with keys x length; on
    a long degenerate generation (thousands of unclosed tags) that is seconds per text. Within
    the budget, which real outputs come nowhere near, the result is Donut's; past it, what was
    read so far.
    """

    def __init__(self) -> None:
        self.budget = _DONUT_BUDGET

    def read(self, text: str) -> tuple[dict | list | None, str]:
        """The top level: a dict, a list (after a ``<sep/>``) or None, and the unread rest."""
        output, items, rest = self._level(text, depth=0)
        if items is not None:
            return items, rest
        return (output or None), rest

    def _level(self, tokens: str, depth: int) -> tuple[dict, list | None, str]:
        """One call of token2json: its dict, the list it became after a ``<sep/>``, the rest."""
        output: dict[str, Any] = {}
        items: list[dict] | None = None
        pos = 0  # Donut's `tokens` is tokens[pos:]; an offset instead of a slice keeps it linear
        while pos < len(tokens) and self.budget > 0:
            start = _DONUT_START.search(tokens, pos)
            if start is None:
                break
            start_token, key = start.group(), start.group(1)
            end = _end_tag(key).search(tokens, pos)
            if end is None:
                # Donut drops an unclosed key's tags (every copy) and reads on.
                self.budget -= len(tokens) - pos
                tokens, pos = tokens[pos:].replace(start_token, ""), 0
                continue
            end_token = end.group()
            content = _tagged(start_token, end_token).search(tokens, pos)
            if content is not None:
                self._store(output, key, content.group(1).strip(), depth)
            stop = tokens.find(end_token, pos) + len(end_token)
            self.budget -= max(stop, end.end(), content.end() if content else 0) - pos
            # Donut strips the rest after each key.
            tokens = tokens.rstrip()
            pos = _SPACES.match(tokens, stop).end()
            if tokens.startswith(_SEP, pos):
                # Donut recurses here and returns [output] + rest: each item is kept, even empty.
                items = [] if items is None else items
                items.append(output)
                output = {}
                pos += len(_SEP)
        if items is not None:
            return output, [*items, output] if output else items, tokens[pos:]
        return output, None, tokens[pos:]

    def _store(self, output: dict[str, Any], key: str, content: str, depth: int) -> None:
        # Donut's test for a subtree is literal and case-sensitive, unlike its tag regexes.
        if "<s_" in content and "</s_" in content and depth < _MAX_DONUT_DEPTH:
            inner, items, _ = self._level(content, depth + 1)
            value = items if items is not None else ([inner] if inner else [])
            if value:
                output[key] = value[0] if len(value) == 1 else value
            return
        leaves = [leaf.strip() for leaf in content.split(_SEP)]
        output[key] = leaves[0] if len(leaves) == 1 else leaves


# --------------------------------------------------------------------------- kv lines

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


_READERS: tuple[tuple[str, Callable[[str], dict | list | None]], ...] = (
    ("json", _read_json),
    ("fenced", _read_fenced),
    ("braces", _read_braces),
    ("python", _read_python),
    ("donut", _read_donut),
    ("kv", from_kv_lines),
)
