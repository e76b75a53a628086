"""Donut's token sequences (`<s_key>value</s_key>`, `<sep/>` between list items), both ways.

Split out of `vlmkit.structured`, which tries `_read_donut` as one of its lenient readers.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

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
