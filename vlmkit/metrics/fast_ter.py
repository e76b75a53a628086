"""TER statistics identical to sacrebleu's `TER()` defaults, computed many times faster.

sacrebleu 2.6.0 follows Tercom: lowercase, split on whitespace, then greedily apply the block shift
that lowers a beam-limited word edit distance the most, until no shift helps or 1000 shift
candidates have been tried in total. Every number it produces depends on that beam (25 cells
either side of a length-scaled diagonal), on its tie-breaking and on the candidate order, so this
module keeps all of them and changes only how the work is done:

- words become one character each, so sequences are `str`s that slice and compare fast and that
  rapidfuzz's C++ Levenshtein accepts;
- the unrestricted distance (rapidfuzz) is a lower bound of the beam one, and equal to it when it
  is at most `beam - 2` (a path of cost d never leaves d cells around the diagonal) or when
  rapidfuzz's own optimal alignment stays inside the beam;
- no reordering of the hypothesis can beat the bag-of-words bound, so a pair whose distance
  already equals it needs no shift search at all (most OCR pairs end here);
- shift candidates are ranked by their lower bound and exact beam distances are computed only
  for those that could still win (branch and bound), reusing the rows of the shared prefix;
- the rows behind sacrebleu's trace are filled only as far from the diagonal as an optimal path
  can reach, and only the distance, not the operation, is stored per cell;
- a search that reaches the candidate limit is not scored, as sacrebleu discards its result.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import pickle
import tempfile
from collections import Counter
from collections.abc import Sequence
from queue import Empty

from rapidfuzz.distance import Levenshtein

# sacrebleu's (Tercom's) limits; changing any of them changes the numbers.
_MAX_SHIFT_SIZE = 10
_MAX_SHIFT_DIST = 50
_BEAM_WIDTH = 25
_MAX_SHIFT_CANDIDATES = 1000
_INF = 10**16

# Below this many pairs a process pool costs more than it saves.
_POOL_MIN_PAIRS = 400
# Several chunks per worker even out the few page-long segments that dominate the cost.
_CHUNKS_PER_WORKER = 8
# Word codes up to here are single characters below the surrogates; beyond, tuples of ints.
_MAX_CHAR_CODE = 0xD7FF

Stats = tuple[float, float]

_log = logging.getLogger(__name__)


def tokenize(sentence: str) -> list[str]:
    """sacrebleu's default TER tokenisation: strip the end, lowercase, split on whitespace."""
    return sentence.rstrip().lower().split()


def ter_statistics(
    hypotheses: Sequence[str], references: Sequence[str], workers: int | None = 1
) -> list[Stats]:
    """Per pair `(num_edits, ref_length)`, equal to `TER()._extract_corpus_statistics`.

    `workers` <= 1 computes in this process; > 1 uses that many processes, this one included
    (the others spawned; the rows come back in input order and do not depend on `workers`);
    None uses every CPU this process may run on. Inputs under a few hundred pairs stay in this
    process, where a pool would cost more than it saves.
    """
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses but {len(references)} references; they must pair up"
        )
    if workers is None:
        workers = _available_cpus()
    pairs = list(zip(hypotheses, references, strict=True))
    # a daemonic process (itself a pool worker) may not start children
    if workers <= 1 or len(pairs) < _POOL_MIN_PAIRS or multiprocessing.current_process().daemon:
        return _chunk_statistics(pairs)
    return _pool_statistics(pairs, workers)


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this process may use, in a container too
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def pair_statistics(hypothesis: str, reference: str) -> Stats:
    """`(num_edits, ref_length)` of one pair, as sacrebleu's TER computes it."""
    words_hyp, words_ref = tokenize(hypothesis), tokenize(reference)
    return float(translation_edits(words_hyp, words_ref)), float(len(words_ref))


def translation_edits(words_hyp: Sequence[str], words_ref: Sequence[str]) -> int:
    """Shifts plus beam edit distance after them, sacrebleu's `translation_edit_rate` count."""
    if not words_ref:
        return len(words_hyp)  # sacrebleu: every hypothesis word is an edit, length 0
    if not words_hyp:
        return len(words_ref)
    if list(words_hyp) == list(words_ref):
        return 0
    hyp, ref = _encode(words_hyp, words_ref)
    distance = Levenshtein.distance(hyp, ref)
    bag_bound = _bag_bound(hyp, ref)
    beam = _beam_width(len(hyp), len(ref))
    if distance == bag_bound and _certified(distance, beam):
        return distance  # the shift search could not lower it: most pairs end here
    return _ShiftSearch(hyp, ref, beam, bag_bound).edits(distance)


def _bag_bound(hyp: Sequence, ref: Sequence) -> int:
    """The distance no reordering of `hyp` can get below: words without a partner in `ref`."""
    unmatched = Counter(hyp)
    unmatched.subtract(ref)
    surplus = sum(count for count in unmatched.values() if count > 0)
    return surplus + max(0, len(ref) - len(hyp))


def _beam_width(n: int, m: int) -> int:
    # sacrebleu widens the beam for very unequal lengths, so consecutive rows overlap.
    ratio = m / n
    return math.ceil(ratio / 2 + _BEAM_WIDTH) if ratio / 2 > _BEAM_WIDTH else _BEAM_WIDTH


def _certified(distance: int, beam: int) -> bool:
    """True when the unrestricted distance is provably the beam distance.

    A path of cost d has |j - i*m/n| <= d in every cell, and sacrebleu's beam row i spans
    [floor(i*m/n) - beam, floor(i*m/n) + beam); one cell of margin covers float rounding.
    """
    return distance <= beam - 2


def _chunk_statistics(pairs: Sequence[tuple[str, str]]) -> list[Stats]:
    return [pair_statistics(hyp, ref) for hyp, ref in pairs]


def _pool_statistics(pairs: list[tuple[str, str]], workers: int) -> list[Stats]:
    """`workers` processes: this one and `workers - 1` spawned helpers, results in input order.

    Helpers take chunks from the front, this process from the back, so it works while the
    helpers start (a fresh interpreter imports vlmkit first, most of a second) and never waits
    for a helper that has not taken anything: a pool on a small input costs little.
    """
    chunks = _balanced_chunks(pairs, workers * _CHUNKS_PER_WORKER)
    # spawn, not fork: safe when the caller holds threads or locks, same on every platform.
    context = multiprocessing.get_context("spawn")
    bounds = context.Array("q", [0, len(chunks)])  # next chunk from the front; end of the back
    done = context.Queue()
    results: dict[int, list[Stats]] = {}
    with tempfile.TemporaryDirectory(prefix="vlmkit-ter-") as folder:
        # A file, not the start arguments: a spawned child reads those only after its imports,
        # and a large write would block this process until then.
        path = os.path.join(folder, "chunks.pickle")
        with open(path, "wb") as file:
            pickle.dump(chunks, file, protocol=pickle.HIGHEST_PROTOCOL)
        helpers = [
            context.Process(target=_helper, args=(path, bounds, done), daemon=True)
            for _ in range(workers - 1)
        ]
        for helper in helpers:
            helper.start()
        try:
            while (k := _claim(bounds, front=False)) is not None:
                results[k] = _chunk_statistics(chunks[k])
            _collect(results, chunks, done, helpers)
        finally:
            for helper in helpers:
                # every chunk a helper took has been collected: what it still does is idle
                helper.terminate()
                helper.join()
    return [row for k in range(len(chunks)) for row in results[k]]


def _claim(bounds, front: bool) -> int | None:
    """Take the next chunk index from the front or the back; None when none is left."""
    with bounds.get_lock():
        if bounds[0] >= bounds[1]:
            return None
        if front:
            bounds[0] += 1
            return bounds[0] - 1
        bounds[1] -= 1
        return bounds[1]


def _helper(path: str, bounds, done) -> None:
    with open(path, "rb") as file:
        chunks = pickle.load(file)
    while (k := _claim(bounds, front=True)) is not None:
        done.put((k, _chunk_statistics(chunks[k])))


def _collect(results: dict, chunks: list, done, helpers: list) -> None:
    """Wait for the chunks the helpers took; score here the ones a dead helper left."""
    while len(results) < len(chunks):
        try:
            k, rows = done.get(timeout=0.5)
            results[k] = rows
        except Empty:
            if any(helper.is_alive() for helper in helpers):
                continue
            _drain(results, done)  # a helper's last rows may still be in the pipe
            missing = [k for k in range(len(chunks)) if k not in results]
            if missing:
                # e.g. a caller's script without a `__main__` guard, or a helper killed for memory
                _log.warning("TER helper processes stopped; scoring %d chunks here", len(missing))
            for k in missing:
                results[k] = _chunk_statistics(chunks[k])


def _drain(results: dict, done) -> None:
    while True:
        try:
            k, rows = done.get(timeout=0.1)
        except Empty:
            return
        results[k] = rows


def _balanced_chunks(pairs: list[tuple[str, str]], count: int) -> list[list[tuple[str, str]]]:
    """Consecutive chunks of about equal estimated cost (input order is kept for the results)."""
    # Cost grows faster than linearly with length (beam rows times shifts); 8 characters ~ a word.
    costs = [1 + (len(ref) // 8) ** 2 for _, ref in pairs]
    target = sum(costs) / count
    chunks: list[list[tuple[str, str]]] = [[]]
    load = 0.0
    for pair, cost in zip(pairs, costs, strict=True):
        if load >= target and len(chunks) < count:
            chunks.append([])
            load = 0.0
        chunks[-1].append(pair)
        load += cost
    return chunks


def _encode(words_hyp: Sequence[str], words_ref: Sequence[str]) -> tuple[Sequence, Sequence]:
    """Both word lists as sequences of small integer codes, as `str` whenever they fit."""
    codes: dict[str, int] = {}
    hyp = [codes.setdefault(word, len(codes)) for word in words_hyp]
    ref = [codes.setdefault(word, len(codes)) for word in words_ref]
    if len(codes) <= _MAX_CHAR_CODE:
        return "".join(map(chr, hyp)), "".join(map(chr, ref))
    return tuple(hyp), tuple(ref)


def _perform_shift(words: Sequence, start: int, length: int, target: int) -> Sequence:
    """sacrebleu's shift: move `words[start:start+length]` so that it lands before `target`."""
    block = words[start : start + length]
    if target < start:
        return words[:target] + block + words[target:start] + words[start + length :]
    if target > start + length:
        return words[:start] + words[start + length : target] + block + words[target:]
    # a target inside or right after the block: sacrebleu's third case, kept as it is
    after = length + target
    return words[:start] + words[start + length : after] + block + words[after:]


class _ShiftSearch:
    """One pair: the beam geometry, the reference index and sacrebleu's greedy shift loop."""

    def __init__(self, hyp: Sequence, ref: Sequence, beam: int, bag_bound: int) -> None:
        self.hyp, self.ref = hyp, ref
        self.n, self.m = len(hyp), len(ref)
        self.beam = beam
        # Shifts permute the hypothesis, so no shifted version gets below this distance.
        self.bag_bound = bag_bound
        self.diagonal, self.lo, self.hi = self._beam_rows()
        self.positions: dict = {}
        for j, word in enumerate(ref):
            self.positions.setdefault(word, []).append(j)

    def _beam_rows(self) -> tuple[list[int], list[int], list[int]]:
        """Per hypothesis row i: sacrebleu's diagonal and the reference columns [lo, hi)."""
        ratio = self.m / self.n  # the same float sacrebleu multiplies, so the same floors
        diagonal, lo, hi = [0], [0], [self.m + 1]
        for i in range(1, self.n + 1):
            middle = math.floor(i * ratio)
            diagonal.append(middle)
            lo.append(max(0, middle - self.beam))
            hi.append(min(self.m + 1, middle + self.beam))
        hi[self.n] = self.m + 1  # the last row is always complete up to the right
        return diagonal, lo, hi

    def edits(self, distance: int) -> int:
        """sacrebleu's count for the pair, given the unrestricted edit distance."""
        if distance == self.bag_bound and (
            self._certified(distance) or self._path_in_beam(self.hyp)
        ):
            return distance
        hyp, rows = self.hyp, self._rows(self.hyp, self._width(distance))
        shifts, checked = 0, 0
        while rows[self.n][self.m] > self.bag_bound:
            candidates, checked, exhausted = self._candidates(hyp, rows, checked)
            if exhausted:
                break  # sacrebleu stops here without applying the shift it found
            best = self._best_shift(hyp, rows, candidates)
            if best is None:
                break
            hyp, rows = best
            shifts += 1
        return shifts + rows[self.n][self.m]

    def _certified(self, distance: int) -> bool:
        return _certified(distance, self.beam)

    def _width(self, distance: int) -> int | None:
        """How far from the diagonal the rows must be filled to give sacrebleu's trace.

        When the distance d is certified, every cell of every optimal path lies within d of the
        diagonal; cells further out can only be larger, so leaving them out changes no value on
        an optimal path and no choice of the trace. None: the whole beam is needed.
        """
        return distance if self._certified(distance) else None

    def _path_in_beam(self, hyp: Sequence) -> bool:
        """True when rapidfuzz's optimal alignment stays in sacrebleu's beam, which then cannot
        give a larger distance (the beam distance is never below the unrestricted one)."""
        lo, hi = self.lo, self.hi
        i = j = 0
        for tag, src, _ in Levenshtein.editops(hyp, self.ref).as_list():
            while i < src:  # the matching run before this operation
                i, j = i + 1, j + 1
                if not lo[i] <= j < hi[i]:
                    return False
            if tag != "insert":
                i += 1
            if tag != "delete":
                j += 1
            if i and not lo[i] <= j < hi[i]:
                return False
        while i < self.n:
            i, j = i + 1, j + 1
            if not lo[i] <= j < hi[i]:
                return False
        return True

    def _beam_distance(self, hyp: Sequence, lower: int, rows: list, start: int):
        """sacrebleu's distance for `hyp`, with its rows when they had to be computed."""
        if self._certified(lower) or self._path_in_beam(hyp):
            return lower, None
        new_rows = self._rows(hyp, None, rows, start)
        return new_rows[self.n][self.m], new_rows

    def _rows(
        self, hyp: Sequence, width: int | None, rows: list | None = None, start: int = 0
    ) -> list[list[int]]:
        """Beam edit-distance rows for `hyp`, filled `width` cells around the diagonal (None:
        the whole beam); rows[0..start] are taken from `rows` as they are."""
        m, ref, lo, hi = self.m, self.ref, self.lo, self.hi
        if width is not None:
            lo = [max(a, d - width) for a, d in zip(lo, self.diagonal, strict=True)]
            hi = [min(b, d + width + 2) for b, d in zip(hi, self.diagonal, strict=True)]
        table = [list(range(m + 1))] if rows is None else rows[: start + 1]
        empty = [_INF] * (m + 1)  # cells outside the beam stay out of every minimum
        prev = table[start]
        for i in range(start + 1, self.n + 1):
            word = hyp[i - 1]
            first, last = lo[i], hi[i]
            cur = empty[:first]
            if first == 0:
                cur.append(prev[0] + 1)
                first = 1
            left = cur[first - 1]
            append = cur.append
            for ref_word, diag, up in zip(
                ref[first - 1 : last - 1], prev[first - 1 : last - 1], prev[first:last], strict=True
            ):
                # the value does not depend on sacrebleu's preference on ties, only the trace does
                if ref_word != word:
                    diag += 1
                up += 1
                if up < diag:
                    diag = up
                left += 1
                if left > diag:
                    left = diag
                append(left)
            cur += empty[last:]
            table.append(cur)
            prev = cur
        return table

    def _alignment(self, hyp: Sequence, rows: list[list[int]]):
        """sacrebleu's alignment and error flags, from its trace through the beam rows.

        The trace takes, at each cell, the first of substitution/match, hypothesis-word deletion
        and reference-word insertion that gives the cell's value, which is exactly the operation
        sacrebleu stored there (it only replaces an operation with a strictly cheaper one).
        """
        ref = self.ref
        align, hyp_err, ref_err = [-1] * self.m, [0] * self.n, [0] * self.m
        i, j = self.n, self.m
        while i > 0 and j > 0:
            cost = rows[i][j]
            mismatch = hyp[i - 1] != ref[j - 1]
            if rows[i - 1][j - 1] + mismatch == cost:
                align[j - 1] = i - 1
                if mismatch:
                    hyp_err[i - 1] = ref_err[j - 1] = 1
                i, j = i - 1, j - 1
            elif rows[i - 1][j] + 1 == cost:
                hyp_err[i - 1] = 1
                i -= 1
            else:
                align[j - 1] = i - 1
                ref_err[j - 1] = 1
                j -= 1
        for k in range(i):
            hyp_err[k] = 1
        for k in range(j):
            ref_err[k] = 1  # align stays -1: before the first hypothesis word
        return align, hyp_err, ref_err

    def _candidates(self, hyp: Sequence, rows: list[list[int]], checked: int):
        """sacrebleu's shift candidates `(start, length, target)` in its order, and the count.

        Returns `exhausted` when the running count reaches the limit; sacrebleu checks the limit
        only after all targets of one matching block, so the count may pass it a little.
        """
        align, hyp_err, ref_err = self._alignment(hyp, rows)
        hyp_sum, ref_sum = _prefix_sums(hyp_err), _prefix_sums(ref_err)
        n, m, ref = self.n, self.m, self.ref
        found: list[tuple[int, int, int]] = []
        for start_h in range(n):
            for start_r in self.positions.get(hyp[start_h], ()):
                if start_r > start_h + _MAX_SHIFT_DIST:
                    break
                if start_r < start_h - _MAX_SHIFT_DIST:
                    continue
                longest = 1
                limit = min(_MAX_SHIFT_SIZE, n - start_h, m - start_r)
                while longest < limit and hyp[start_h + longest] == ref[start_r + longest]:
                    longest += 1
                for length in range(1, longest + 1):
                    # shift only words that are wrong to a place where the reference is unmatched
                    if hyp_sum[start_h + length] == hyp_sum[start_h]:
                        continue
                    if ref_sum[start_r + length] == ref_sum[start_r]:
                        continue
                    if start_h <= align[start_r] < start_h + length:
                        continue
                    for target in _targets(align, start_r, length):
                        found.append((start_h, length, target))
                        checked += 1
                    if checked >= _MAX_SHIFT_CANDIDATES:
                        return found, checked, True
        return found, checked, False

    def _best_shift(self, hyp: Sequence, rows: list[list[int]], candidates):
        """The shift sacrebleu picks, with its rows, or None when none lowers the distance.

        sacrebleu ranks by (gain, length, -start, -target); ties on all four are the same shift.
        Gains are bounded by the unrestricted distance, so exact beam distances are needed only
        for candidates whose bound still beats the best exact one.
        """
        pre = rows[self.n][self.m]
        bounded = []
        for start, length, target in candidates:
            shifted = _perform_shift(hyp, start, length, target)
            # rapidfuzz returns cutoff + 1 for anything worse than the cutoff: no gain there
            lower = Levenshtein.distance(shifted, self.ref, score_cutoff=pre - 1)
            if lower < pre:
                bounded.append((pre - lower, length, -start, -target, lower, shifted))
        bounded.sort(key=lambda c: c[:4], reverse=True)
        best, chosen = None, None
        for gain_bound, length, neg_start, neg_target, lower, shifted in bounded:
            if best is not None and (gain_bound, length, neg_start, neg_target) <= best:
                break
            prefix = min(-neg_start, -neg_target)  # rows before the first moved word are shared
            distance, new_rows = self._beam_distance(shifted, lower, rows, prefix)
            key = (pre - distance, length, neg_start, neg_target)
            if key[0] > 0 and (best is None or key > best):
                best, chosen = key, (shifted, distance, new_rows, prefix)
        if chosen is None:
            return None
        shifted, distance, new_rows, prefix = chosen
        if new_rows is None:
            new_rows = self._rows(shifted, self._width(distance), rows, prefix)
        return shifted, new_rows


def _targets(align: list[int], start_r: int, length: int) -> list[int]:
    """Insertion points for a block matching the reference at `start_r`, repeats dropped."""
    targets = []
    previous = -1
    for position in range(start_r - 1, start_r + length):
        target = 0 if position == -1 else align[position] + 1
        if target != previous:
            targets.append(target)
            previous = target
    return targets


def _prefix_sums(flags: list[int]) -> list[int]:
    sums = [0]
    for flag in flags:
        sums.append(sums[-1] + flag)
    return sums
