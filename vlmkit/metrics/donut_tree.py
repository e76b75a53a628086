"""Donut's JSON extraction metrics (field F1, tree-edit-distance accuracy), exact and fast.

The numbers are those of ``JSONParseEvaluator`` in clovaai/donut (``donut/util.py``), float for
float, which is what papers that report CORD "TED accuracy" and "F1" ran. Donut needs torch at
import time and computes the tree edit distance with ``zss`` and nltk's pure-Python string edit
distance (~0.1 s per receipt); this module reimplements the same definitions without them.

Semantics kept on purpose, quirks included (the test suite checks each against Donut itself):

* Normalisation drops every falsy value, the number 0 and ``False`` included, sorts keys by
  ``(len(key), key)``, stringifies and strips leaves, keeps only ``str``/``int``/``float`` items of
  lists that are not all dicts (there blank strings are dropped), but keeps a blank scalar as
  ``""``. Lists of dicts keep their order.
* Field F1 is micro F1 over flattened ``(dotted.key, value)`` pairs matched as multisets, exact
  and case-sensitive: ``tp / (tp + (fp + fn) / 2)``.
* TED accuracy is ``max(0, 1 - TED(pred, ref) / TED(empty, ref))`` on trees whose inner nodes are
  keys (``<root>``, ``<subtree>`` for list items) and whose leaves are ``<leaf>value``. Any label
  that contains ``<leaf>``, a key included, costs like a leaf.

Two inputs make Donut divide by zero; this module defines them (see ``donut_f1`` and
``ted_accuracy``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz.distance import Levenshtein

__all__ = [
    "FieldCounts",
    "donut_f1",
    "field_counts",
    "flatten_fields",
    "normalize_tree",
    "ted_accuracy",
    "tree_edit_distance",
]

_LEAF = "<leaf>"
_LEAF_TYPES = (str, int, float)


# --------------------------------------------------------------------------- normalisation


def normalize_tree(value: Any) -> Any:
    """Normalise a parsed JSON value exactly as Donut's ``normalize_dict`` does.

    Returns ``{}`` for a falsy value, a dict of key -> list for a dict, a list for a list and a
    one-item list of str for any other value; nested values follow the same rules.
    """
    # The branches and tests (isinstance vs type(...) in, where .strip() happens) mirror Donut's
    # line by line, because each of them decides which odd values survive.
    if not value:
        return {}
    if isinstance(value, dict):
        out: dict[Any, list[Any]] = {}
        for key in sorted(value, key=lambda k: (len(k), k)):
            child = normalize_tree(value[key])
            if child:
                out[key] = child if isinstance(child, list) else [child]
        return out
    if isinstance(value, list):
        if all(isinstance(item, dict) for item in value):
            return [item for item in map(normalize_tree, value) if item]
        return [
            text
            for item in value
            if type(item) in _LEAF_TYPES and (text := str(item).strip())  # bool is not kept
        ]
    return [str(value).strip()]


def flatten_fields(normalized: Any) -> list[tuple[str, str]]:
    """Donut's ``flatten``: ``(dotted.key, leaf)`` pairs of a normalised tree, in tree order.

    Items of a list share their parent's key; a top-level list or scalar gives the key ``""``.
    """
    out: list[tuple[str, str]] = []

    def walk(value: Any, key: str) -> None:
        if type(value) is dict:
            for child_key, child in value.items():
                walk(child, f"{key}.{child_key}" if key else child_key)
        elif type(value) is list:
            for item in value:
                walk(item, key)
        else:
            out.append((key, value))

    walk(normalized, "")
    return out


# --------------------------------------------------------------------------- field F1


@dataclass(frozen=True)
class FieldCounts:
    """Matched-field counts of one (prediction, reference) pair, or a sum of them."""

    tp: int
    """Fields (key and value) in both, counted with multiplicity."""
    fp: int
    """Predicted fields left unmatched."""
    fn: int
    """Reference fields left unmatched."""
    per_field: Mapping[str, tuple[int, int, int]] = field(default_factory=dict, hash=False)
    """``(tp, fp, fn)`` per dotted field name, names sorted."""

    @property
    def f1(self) -> float:
        """Donut's F1 of these counts (see ``donut_f1``)."""
        return donut_f1(self.tp, self.fp, self.fn)

    def __add__(self, other: FieldCounts) -> FieldCounts:
        if not isinstance(other, FieldCounts):
            return NotImplemented
        merged = dict(self.per_field)
        for name, (tp, fp, fn) in other.per_field.items():
            a, b, c = merged.get(name, (0, 0, 0))
            merged[name] = (a + tp, b + fp, c + fn)
        return FieldCounts(
            self.tp + other.tp,
            self.fp + other.fp,
            self.fn + other.fn,
            dict(sorted(merged.items())),
        )


def field_counts(pred: Any, ref: Any) -> FieldCounts:
    """Count matched fields the way Donut's ``cal_f1`` does for one pair.

    ``pred`` and ``ref`` are parsed JSON values; both are normalised here. Donut matches each
    predicted field against the first equal reference field still unmatched and removes it,
    which is a multiset intersection: ``tp = sum(min(count_pred, count_ref))`` per field.
    Its ``fn_or_fp`` total is ``fp + fn``.
    """
    predicted = Counter(flatten_fields(normalize_tree(pred)))
    expected = Counter(flatten_fields(normalize_tree(ref)))
    table: dict[str, list[int]] = {}
    for item, count in predicted.items():
        matched = min(count, expected.get(item, 0))
        row = table.setdefault(item[0], [0, 0, 0])
        row[0] += matched
        row[1] += count - matched
    for item, count in expected.items():
        row = table.setdefault(item[0], [0, 0, 0])
        row[2] += count - min(count, predicted.get(item, 0))
    tp = sum(row[0] for row in table.values())
    fp = sum(row[1] for row in table.values())
    fn = sum(row[2] for row in table.values())
    per_field = {name: (row[0], row[1], row[2]) for name, row in sorted(table.items())}
    return FieldCounts(tp, fp, fn, per_field)


def donut_f1(tp: int, fp: int, fn: int) -> float:
    """Donut's micro F1, ``tp / (tp + (fp + fn) / 2)``, with the same float operations.

    Summed over a corpus the counts give exactly Donut's ``cal_f1`` on the same lists. With no
    field on either side (all three counts 0) Donut raises ZeroDivisionError; here the value is
    1.0: nothing was expected and nothing was predicted, so there is no error to count, the same
    convention as ``ted_accuracy`` for two empty trees.
    """
    if tp == 0 and fp == 0 and fn == 0:
        return 1.0
    # Donut: total_tp / (total_tp + total_fn_or_fp / 2); (fp + fn) is that integer.
    return tp / (tp + (fp + fn) / 2)


# --------------------------------------------------------------------------- tree edit distance


class _Tree:
    """A Donut tree as flat postorder arrays, the layout Zhang–Shasha works on."""

    __slots__ = ("cost", "is_leaf", "keyroots", "label", "lmd")

    def __init__(self, normalized: Any) -> None:
        self.label: list[str] = []  # for "<leaf>" labels: the text left after removing "<leaf>"
        self.is_leaf: list[bool] = []  # Donut's test: "<leaf>" in label
        self.cost: list[int] = []  # insertion cost = removal cost
        self.lmd: list[int] = []  # postorder index of the leftmost leaf descendant
        self._add(normalized, "<root>")
        last: dict[int, int] = {}
        for index, leftmost in enumerate(self.lmd):
            last[leftmost] = index
        # Keyroots: the highest node of each leftmost path, i.e. the root and every node that is
        # not a first child.
        self.keyroots: list[int] = sorted(last.values())

    def _node(self, label: str, leftmost: int) -> None:
        is_leaf = _LEAF in label
        if is_leaf:
            label = label.replace(_LEAF, "")
        self.label.append(label)
        self.is_leaf.append(is_leaf)
        self.cost.append(len(label) if is_leaf else 1)
        self.lmd.append(leftmost)

    def _add(self, data: Any, label: str) -> None:
        # Mirrors construct_tree_from_dict. In postorder a subtree's nodes are contiguous and
        # its leftmost leaf comes first, so that leaf's index is where the subtree starts.
        start = len(self.label)
        if isinstance(data, dict):
            for key, value in data.items():
                self._add(value, key)
        elif isinstance(data, list):
            if all(isinstance(item, dict) for item in data):
                for item in data:
                    self._add(item, "<subtree>")
            else:
                for item in data:
                    index = len(self.label)
                    self._node(f"{_LEAF}{item}", index)
        else:
            # Donut raises a bare Exception here; normalised input never gets here.
            raise TypeError(f"cannot build a Donut tree node {label!r} from {data!r}")
        self._node(label, start)

    @property
    def size(self) -> int:
        """Donut's denominator: the distance from the empty tree (a lone ``<root>``).

        Mapping the lone root onto this tree's root costs 0 and every other node is inserted;
        mapping it anywhere else costs at least as much as deleting it (1) or more, since a
        non-leaf label other than ``<root>`` costs 1 and a leaf costs one more than its
        insertion. So the distance is the sum of insertion costs of all nodes but the root.
        """
        return sum(self.cost) - 1


def _update_cost(t1: _Tree, x: int, t2: _Tree, y: int) -> int:
    """Donut's ``update_cost`` between node x of t1 and node y of t2."""
    if t1.is_leaf[x]:
        if t2.is_leaf[y]:
            # Unit-cost Levenshtein over code points, as nltk.edit_distance with its defaults
            # (substitution_cost=1, transpositions=False: its transposition term is never picked).
            return Levenshtein.distance(t1.label[x], t2.label[y])
        return 1 + t1.cost[x]
    if t2.is_leaf[y]:
        return 1 + t2.cost[y]
    return int(t1.label[x] != t2.label[y])


def _zhang_shasha(t1: _Tree, t2: _Tree) -> int:
    """Exact tree edit distance (Zhang & Shasha 1989) with Donut's costs, as an int.

    Each keyroot pair fills a forest-distance table; ``treedist[x][y]`` for the pair of
    subtrees rooted at x and y is stored when x and y both lie on the leftmost paths of the
    current keyroots. Every (x, y) is a "tree" cell exactly once, so each update cost is
    computed once.
    """
    lmd1, lmd2 = t1.lmd, t2.lmd
    cost1, cost2 = t1.cost, t2.cost
    treedist = [[0] * len(cost2) for _ in cost1]
    # Per keyroot j of t2: its columns as (y, insert cost, offset of y's leftmost leaf in the
    # table), built once instead of once per keyroot of t1.
    columns = []
    for j in t2.keyroots:
        lj = lmd2[j]
        columns.append((j, lj, [(y, cost2[y], lmd2[y] - lj) for y in range(lj, j + 1)]))
    for i in t1.keyroots:
        li = lmd1[i]
        for _j, lj, cols in columns:
            first = [0]
            total = 0
            for _y, cy, _q in cols:
                total += cy
                first.append(total)
            table = [first]
            prev = first
            for x in range(li, i + 1):
                dx = cost1[x]
                left = prev[0] + dx
                cur = [left]
                td_x = treedist[x]
                lx = lmd1[x]
                if lx == li:
                    # x is on the leftmost path of keyroot i.
                    b = 0
                    for y, cy, q in cols:
                        b += 1
                        best = prev[b] + dx
                        other = left + cy
                        if other < best:
                            best = other
                        if q == 0:
                            other = prev[b - 1] + _update_cost(t1, x, t2, y)
                            if other < best:
                                best = other
                            td_x[y] = best
                        else:
                            other = first[q] + td_x[y]
                            if other < best:
                                best = other
                        cur.append(best)
                        left = best
                else:
                    before = table[lx - li]
                    b = 0
                    for y, cy, q in cols:
                        b += 1
                        best = prev[b] + dx
                        other = left + cy
                        if other < best:
                            best = other
                        other = before[q] + td_x[y]
                        if other < best:
                            best = other
                        cur.append(best)
                        left = best
                table.append(cur)
                prev = cur
    return treedist[-1][-1]


def tree_edit_distance(pred: Any, ref: Any) -> int:
    """Donut's tree edit distance between two parsed JSON values (normalised here).

    Equal to ``zss.distance`` on Donut's trees with Donut's costs (which returns it as a float).
    """
    return _distance(normalize_tree(pred), _Tree(normalize_tree(ref)), normalize_tree(ref))


def _distance(pred_norm: Any, ref_tree: _Tree, ref_norm: Any) -> int:
    # Equal normalised values build identical trees (keys are sorted, lists keep order), and
    # the identity mapping costs 0 because every update of a node to itself costs 0.
    if pred_norm == ref_norm:
        return 0
    return _zhang_shasha(_Tree(pred_norm), ref_tree)


def ted_accuracy(pred: Any, ref: Any) -> float:
    """Donut's ``cal_acc``: ``max(0, 1 - TED(pred, ref) / TED(empty, ref))``, the same float.

    Donut divides by zero when the reference tree has no size: its normalised form is empty
    (no field survives normalisation) or, degenerately, every node costs 0 (keys and values
    made only of ``<leaf>`` and blanks). With numpy installed zss returns numpy floats, so Donut
    then returns 0 via ``nan``/``inf`` and a RuntimeWarning, even for two empty trees; without
    numpy it raises ZeroDivisionError. Here the value is 1.0 when the prediction's tree is
    identical (distance 0), for example empty too, and 0.0 otherwise.
    """
    ref_norm = normalize_tree(ref)
    ref_tree = _Tree(ref_norm)
    distance = _distance(normalize_tree(pred), ref_tree, ref_norm)
    size = ref_tree.size
    if size == 0:
        return 1.0 if distance == 0 else 0.0
    # Integers well below 2**53: int / int is the correctly rounded quotient, as is numpy's
    # float64 division in Donut, so the result is the same float.
    return max(0.0, 1 - distance / size)
