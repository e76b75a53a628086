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

import numpy as np
from rapidfuzz import process
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


def _raw_fields(value: Any) -> list[tuple[str, str]]:
    """``flatten_fields(normalize_tree(value))`` as a multiset, in one pass over the raw value.

    Normalisation only drops and stringifies; the order it sorts keys into does not matter to a
    multiset, and a dropped (empty) subtree has no fields. So the fields can be read off the raw
    value with the same tests, without building the normalised tree: F1 needs no more.
    """
    out: list[tuple[str, str]] = []
    append = out.append

    def walk(value: Any, key: str) -> None:
        # Called with truthy values only, as normalize_dict maps falsy ones to {}.
        if isinstance(value, dict):
            for child_key, child in value.items():
                if child:
                    walk(child, f"{key}.{child_key}" if key else child_key)
        elif isinstance(value, list):
            if all(isinstance(item, dict) for item in value):
                for item in value:
                    if item:
                        walk(item, key)
            else:
                for item in value:
                    if type(item) in _LEAF_TYPES and (text := str(item).strip()):
                        append((key, text))
        else:
            append((key, str(value).strip()))

    if value:
        walk(value, "")
    return out


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

    ``pred`` and ``ref`` are parsed JSON values; both are normalised here. Donut walks the
    predicted fields, and removes from the reference list the first field equal to each one
    (a true positive) or counts a miss; what is left of the reference list is added to the
    misses. That is a multiset intersection: ``tp = sum(min(count_pred, count_ref))`` per
    ``(key, value)``, and Donut's ``total_fn_or_fp`` is ``fp + fn`` here. Summing these counts
    over samples and calling ``donut_f1`` gives Donut's corpus ``cal_f1(preds, answers)``.
    """
    predicted = Counter(_raw_fields(pred))
    expected = Counter(_raw_fields(ref))
    matched = predicted & expected
    table: dict[str, list[int]] = {}
    for (name, _), count in predicted.items():
        row = table.get(name)
        if row is None:
            table[name] = [0, count, 0]
        else:
            row[1] += count
    for (name, _), count in expected.items():
        row = table.get(name)
        if row is None:
            table[name] = [0, 0, count]
        else:
            row[2] += count
    for (name, _), count in matched.items():
        row = table[name]
        row[0] += count
        row[1] -= count
        row[2] -= count
    tp = sum(matched.values())
    fp = sum(predicted.values()) - tp
    fn = sum(expected.values()) - tp
    per_field = {name: (row[0], row[1], row[2]) for name, row in sorted(table.items())}
    return FieldCounts(tp, fp, fn, per_field)


def donut_f1(tp: int, fp: int, fn: int) -> float:
    """Donut's micro F1, ``tp / (tp + (fp + fn) / 2)``, with the same float operations.

    Summed over a corpus the counts give exactly Donut's ``cal_f1`` on the same lists. With no
    field on either side (all three counts 0) Donut raises ZeroDivisionError; here the value is
    1.0: nothing was expected and nothing was predicted, so there is no error to count, the same
    convention as ``ted_accuracy`` for two empty trees. Any other input with ``tp == 0`` is 0.0,
    as in Donut.
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


def _update_costs(t1: _Tree, t2: _Tree) -> list[list[int]]:
    """Donut's ``update_cost`` for every node pair, ``[x][y]`` for node x of t1 and y of t2.

    Zhang–Shasha asks for each pair exactly once, so the whole table is no extra work; built
    with numpy and rapidfuzz it costs a fraction of asking pair by pair from Python.
    """
    n1, n2 = len(t1.label), len(t2.label)
    ids: dict[str, int] = {}
    # Inner nodes: 0 for the same label, else 1. Leaves get other values below, so giving a
    # leaf's text and an inner label the same id is harmless.
    id1 = np.fromiter((ids.setdefault(s, len(ids)) for s in t1.label), np.int64, n1)
    id2 = np.fromiter((ids.setdefault(s, len(ids)) for s in t2.label), np.int64, n2)
    table = np.not_equal.outer(id1, id2).astype(np.int64)
    leaves1 = [x for x, leaf in enumerate(t1.is_leaf) if leaf]
    leaves2 = [y for y, leaf in enumerate(t2.is_leaf) if leaf]
    # A leaf against an inner node: 1 + the leaf's length, whichever side the leaf is on.
    if leaves1:
        table[leaves1, :] = np.array([t1.cost[x] + 1 for x in leaves1], np.int64)[:, None]
    if leaves2:
        table[:, leaves2] = np.array([t2.cost[y] + 1 for y in leaves2], np.int64)[None, :]
    if leaves1 and leaves2:
        # Two leaves: unit-cost Levenshtein over code points, which is nltk.edit_distance with
        # Donut's (default) arguments: substitution_cost=1 and transpositions=False.
        table[np.ix_(leaves1, leaves2)] = process.cdist(
            [t1.label[x] for x in leaves1],
            [t2.label[y] for y in leaves2],
            scorer=Levenshtein.distance,
            dtype=np.int64,
        )
    return table.tolist()


def _zhang_shasha(t1: _Tree, t2: _Tree) -> int:
    """Exact tree edit distance (Zhang & Shasha 1989) with Donut's costs, as an int.

    Each pair of keyroots (i of t1, j of t2) fills a forest-distance table whose rows are the
    forests lmd(i)..x and whose columns are the forests lmd(j)..y; ``treedist[x][y]``, the
    distance between the subtrees rooted at x and y, is stored where x and y lie on the
    leftmost paths of i and j, and read by later tables. That is zss's recurrence, cell for cell.

    The order differs, not the cells: for one keyroot i, the tables of all keyroots j are laid
    side by side and filled row by row, j in increasing order within a row. A cell of table
    (i, j) reads ``treedist`` values of keyroots j' < j in the same row or of keyroots i' < i,
    and both are ready by then. Rows of a few cells each (most keyroots are small) become one
    long row per x, which is what makes this fast in Python.
    """
    lmd1, lmd2 = t1.lmd, t2.lmd
    cost1, cost2 = t1.cost, t2.cost
    update = _update_costs(t1, t2)
    treedist = [[0] * len(cost2) for _ in cost1]
    # The columns of all keyroots j of t2, each keyroot's block led by its empty forest:
    # (y, insertion cost of y, q, tree) where y = -1 marks the empty forest, q is the position
    # of the forest lmd(j)..lmd(y)-1 in the row, and tree says whether lmd(y) = lmd(j), i.e.
    # whether y is on the leftmost path of j. first is row 0: inserting the forest lmd(j)..y.
    cols: list[tuple[int, int, int, bool]] = []
    first: list[int] = []
    for j in t2.keyroots:
        lj = lmd2[j]
        start = len(cols)
        cols.append((-1, 0, start, False))
        first.append(0)
        for y in range(lj, j + 1):
            cols.append((y, cost2[y], start + lmd2[y] - lj, lmd2[y] == lj))
            first.append(first[-1] + cost2[y])
    for i in t1.keyroots:
        li = lmd1[i]
        table = [first]
        prev = first
        left = diag = 0
        for x in range(li, i + 1):
            dx = cost1[x]
            td_x = treedist[x]
            lx = lmd1[x]
            cur: list[int] = []
            append = cur.append
            if lx == li:
                # x is on the leftmost path of keyroot i: a tree cell where y is on the
                # leftmost path of its keyroot.
                update_x = update[x]
                for (y, cy, q, tree), up in zip(cols, prev):  # noqa: B905 (equal lengths)
                    if y < 0:
                        left = up + dx
                    else:
                        best = up + dx
                        other = left + cy
                        if other < best:
                            best = other
                        if tree:
                            other = diag + update_x[y]
                            if other < best:
                                best = other
                            td_x[y] = best
                        else:
                            other = first[q] + td_x[y]
                            if other < best:
                                best = other
                        left = best
                    append(left)
                    diag = up
            else:
                before = table[lx - li]
                for (y, cy, q, _tree), up in zip(cols, prev):  # noqa: B905 (equal lengths)
                    if y < 0:
                        left = up + dx
                    else:
                        best = up + dx
                        other = left + cy
                        if other < best:
                            best = other
                        other = before[q] + td_x[y]
                        if other < best:
                            best = other
                        left = best
                    append(left)
            table.append(cur)
            prev = cur
    return treedist[-1][-1]


def tree_edit_distance(pred: Any, ref: Any) -> int:
    """Donut's tree edit distance between two parsed JSON values (normalised here).

    Equal to ``zss.distance`` on Donut's trees with Donut's costs (which returns it as a float).
    Symmetric, as Donut's costs are: insertion and removal cost the same, updates are symmetric.
    """
    ref_norm = normalize_tree(ref)
    return _distance(normalize_tree(pred), _Tree(ref_norm), ref_norm)


def _distance(pred_norm: Any, ref_tree: _Tree, ref_norm: Any) -> int:
    # Equal normalised values build identical trees (keys are sorted, lists keep order), and
    # the identity mapping costs 0 because every update of a node to itself costs 0.
    if pred_norm == ref_norm:
        return 0
    return _zhang_shasha(_Tree(pred_norm), ref_tree)


def ted_accuracy(pred: Any, ref: Any) -> float:
    """Donut's ``cal_acc``: ``max(0, 1 - TED(pred, ref) / TED(empty, ref))``, the same float.

    Scores are per sample; Donut's test.py reports their mean (``np.mean``) as TED accuracy.

    Donut divides by zero when the reference tree has no size: its normalised form is empty
    (``{}``, ``[]``, ``""``, ``0``, ``None``, or only such values nested) or, degenerately, every
    node but the root costs 0 (a blank scalar such as ``" "``, or keys spelt ``"<leaf>"`` over
    blank values). With numpy installed zss returns numpy floats, so Donut then returns 0 via
    ``nan``/``inf`` and a RuntimeWarning, even for two empty trees; without numpy it raises
    ZeroDivisionError. Here the value is 1.0 when the prediction is at distance 0 from such a
    reference (it is empty too, or blank), and 0.0 otherwise.
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
