"""Hugging Face ``evaluate``'s BLEU (TensorFlow-NMT BLEU on 13a tokens), reproduced without it.

``evaluate.load("bleu")`` downloads its script at run time, so it fails offline, and its numbers
are not sacrebleu's. This module computes the same dictionary, bit for bit, from the definition
in huggingface/evaluate ``metrics/bleu/bleu.py`` + ``tokenizer_13a.py`` and the script that
``bleu.py`` imports from tensorflow/nmt ``nmt/scripts/bleu.py`` (evaluate fetches it as
``nmt_bleu.py``). Stdlib only.

How it differs from sacrebleu's corpus BLEU (all on purpose, to match published numbers):

- 0-1 scale, not 0-100; no smoothing by default, and ``smooth=True`` is Lin & Och (2004)
  add-one on *every* order, including unigrams (sacrebleu defaults to ``exp`` smoothing);
- the reference length of a sample is its *shortest* reference, not the closest in length;
- an order with no possible n-grams has precision 0.0, which makes the score 0.0 (no effective
  order): unsmoothed, a corpus whose predictions all have fewer than 4 tokens scores 0.0;
- brevity penalty ``exp(1 - 1/ratio)`` with ``ratio = hyp_len / ref_len`` (computed in that
  order, which matters for the last bits);
- the text is not ``rstrip``-ped before 13a tokenisation, and the tokenizer never lowercases.
  The only visible effect: a trailing ``"-\\n"`` is deleted by 13a's line-join rule here
  (``"co-\\n"`` -> ``co``), whereas sacrebleu strips the newline first and keeps ``co-``.

Where ``evaluate`` raises, vlmkit returns numbers instead (documented in :func:`hf_bleu`):
no samples, or all predictions empty, give ``bleu 0.0``; a reference length of 0 (every
sample's shortest reference empty) gives ``length_ratio 0.0`` (sacrebleu's convention, keeps JSON
finite).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "BleuCounts",
    "hf_bleu",
    "hf_bleu_from_statistics",
    "hf_bleu_statistics",
    "tokenize_13a",
]

Tokenizer = Callable[[str], Sequence[str]]

# --- tokenizer -----------------------------------------------------------------------------------
# 13a pads every ASCII punctuation mark except ' , - . (and, harmlessly, the space) with spaces.
# It is a single-character, context-free rewrite, so str.translate does it in C; the regex form
# with a "\1" template calls back into Python for every match, and every space is a match.
_PADDED_CHARS = ' !"#$%&()*+/:;<=>?@[\\]^_`{|}~'
_PAD_TABLE = str.maketrans({c: f" {c} " for c in _PADDED_CHARS})
# Period and comma are split off unless they sit between digits ("3.14", "2,000" stay whole).
# These two passes consume two characters per match, so runs like "a..." depend on the exact
# left-to-right matching: keep them as the same regex rewrites, applied in the same order.
_SPLIT_AFTER_NON_DIGIT = re.compile(r"([^0-9])([.,])")
_SPLIT_BEFORE_NON_DIGIT = re.compile(r"([.,])([^0-9])")
# A dash after a digit ("1-2") is split off; the look-behind form is equivalent because a digit
# is never the dash of a neighbouring match, and it lets the replacement be a plain literal.
_DASH_AFTER_DIGIT = re.compile(r"(?<=[0-9])-")


def tokenize_13a(line: str) -> list[str]:
    """Split ``line`` into tokens exactly as evaluate's copy of sacrebleu's 13a tokenizer does.

    No ``rstrip`` beforehand (unlike sacrebleu's BLEU), no lowercasing; ``str.split()`` at the
    end, so any Unicode whitespace (tab, NBSP, ...) separates tokens.
    """
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        # Order matters: "&amp;quot;" must become "&quot;", not '"'.
        line = (
            line.replace("&quot;", '"')
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
        )
    # The padding spaces are part of the definition: they make a leading "." or "," count as
    # preceded by a non-digit (".5" -> [".", "5"]).
    line = f" {line} ".translate(_PAD_TABLE)
    if "." in line or "," in line:
        line = _SPLIT_AFTER_NON_DIGIT.sub(r"\1 \2 ", line)
        line = _SPLIT_BEFORE_NON_DIGIT.sub(r" \1 \2", line)
    if "-" in line:
        line = _DASH_AFTER_DIGIT.sub(" - ", line)
    return line.split()


# --- sufficient statistics -----------------------------------------------------------------------
@dataclass(frozen=True)
class BleuCounts:
    """Sufficient statistics of HF BLEU; corpus statistics are the sum over samples.

    Summing (``a + b``, or ``sum(counts)``) is exactly how ``evaluate`` forms the corpus score, so
    a resampled corpus (paired bootstrap) is scored by summing the resampled samples' counts.
    """

    matches_by_order: tuple[int, ...]
    """Clipped n-gram matches for n = 1..max_order."""
    possible_by_order: tuple[int, ...]
    """Prediction n-grams for n = 1..max_order (``max(len - n + 1, 0)`` per sample)."""
    translation_length: int
    """Prediction tokens."""
    reference_length: int
    """Tokens of the shortest reference of each sample."""

    def __post_init__(self) -> None:
        if len(self.matches_by_order) != len(self.possible_by_order):
            raise ValueError(
                "matches_by_order and possible_by_order must have the same length "
                f"({len(self.matches_by_order)} != {len(self.possible_by_order)})"
            )

    @property
    def max_order(self) -> int:
        """The highest n-gram order counted."""
        return len(self.matches_by_order)

    @classmethod
    def zero(cls, max_order: int = 4) -> BleuCounts:
        """The statistics of an empty corpus (the identity of ``+``)."""
        return cls((0,) * max_order, (0,) * max_order, 0, 0)

    def __add__(self, other: BleuCounts) -> BleuCounts:
        if not isinstance(other, BleuCounts):
            return NotImplemented
        if other.max_order != self.max_order:
            raise ValueError(
                f"cannot add BLEU counts of max_order {self.max_order} and {other.max_order}"
            )
        return BleuCounts(
            tuple(
                a + b for a, b in zip(self.matches_by_order, other.matches_by_order, strict=True)
            ),
            tuple(
                a + b for a, b in zip(self.possible_by_order, other.possible_by_order, strict=True)
            ),
            self.translation_length + other.translation_length,
            self.reference_length + other.reference_length,
        )

    def __radd__(self, other: object) -> BleuCounts:
        # Lets the builtin sum() start from its default 0.
        if other == 0:
            return self
        return NotImplemented


def _ngram_counts(tokens: list[str], max_order: int) -> list[Counter]:
    """One Counter per order. Orders never mix, so unigrams are keyed by the bare token."""
    counts: list[Counter] = [Counter(tokens)]
    for n in range(2, max_order + 1):
        counts.append(Counter(zip(*[tokens[i:] for i in range(n)], strict=False)))
    return counts


def _sample_counts(
    hyp: list[str], refs: list[list[str]], max_order: int
) -> tuple[list[int], list[int], int, int]:
    """Matches, possible n-grams, prediction length and shortest reference length of a sample."""
    hyp_len = len(hyp)
    ref_len = min(len(r) for r in refs)
    possible = [max(hyp_len - n, 0) for n in range(max_order)]
    if hyp_len == 0:
        return [0] * max_order, possible, 0, ref_len
    if len(refs) == 1 and refs[0] == hyp:
        # Every n-gram matches itself; skip the counting.
        return list(possible), possible, hyp_len, ref_len

    ref_counts = _ngram_counts(refs[0], max_order)
    for other in refs[1:]:
        # A prediction n-gram may be credited up to the most times it occurs in ANY one reference
        # (Counter union = elementwise max), as in the NMT script.
        for merged, extra in zip(ref_counts, _ngram_counts(other, max_order), strict=True):
            merged |= extra
    matches = []
    for hyp_n, ref_n in zip(_ngram_counts(hyp, max_order), ref_counts, strict=True):
        m = 0
        get = ref_n.get
        for gram, c in hyp_n.items():
            r = get(gram)
            if r:
                m += c if c < r else r
        matches.append(m)
    return matches, possible, hyp_len, ref_len


def _check_max_order(max_order: int) -> None:
    if isinstance(max_order, bool) or not isinstance(max_order, int) or max_order < 1:
        raise ValueError(f"max_order must be a positive integer, got {max_order!r}")


def _as_reference_list(refs: str | Sequence[str], index: int) -> list[str]:
    if isinstance(refs, str):
        return [refs]
    out = list(refs)
    if not out:
        raise ValueError(f"sample {index} has no reference; BLEU needs at least one per prediction")
    for ref in out:
        if not isinstance(ref, str):
            raise TypeError(f"sample {index}: references must be strings, got {type(ref).__name__}")
    return out


def hf_bleu_statistics(
    prediction: str,
    references: str | Sequence[str],
    *,
    max_order: int = 4,
    tokenize: Tokenizer | None = None,
) -> BleuCounts:
    """BLEU statistics of one prediction against its references (one string, or several).

    ``tokenize`` maps a string to tokens; the default is :func:`tokenize_13a`, evaluate's default.
    """
    _check_max_order(max_order)
    tok = tokenize_13a if tokenize is None else tokenize
    refs = [list(tok(r)) for r in _as_reference_list(references, 0)]
    matches, possible, hyp_len, ref_len = _sample_counts(list(tok(prediction)), refs, max_order)
    return BleuCounts(tuple(matches), tuple(possible), hyp_len, ref_len)


def hf_bleu_from_statistics(total: BleuCounts, *, max_order: int = 4, smooth: bool = False) -> dict:
    """evaluate's BLEU dict from (summed) statistics; see :func:`hf_bleu` for the keys.

    The float operations are the NMT script's, in its order, so results are bit-identical.
    """
    _check_max_order(max_order)
    if total.max_order != max_order:
        raise ValueError(f"counts have max_order {total.max_order}, not {max_order}")
    precisions: list[float] = []
    for m, p in zip(total.matches_by_order, total.possible_by_order, strict=True):
        if smooth:
            # Lin & Och add-one, on every order: a prediction with no matches still scores > 0.
            precisions.append((m + 1.0) / (p + 1.0))
        elif p > 0:
            precisions.append(float(m) / p)
        else:
            precisions.append(0.0)

    if min(precisions) > 0:
        # exp of the mean log, not the product's root: that is what the script computes.
        p_log_sum = sum((1.0 / max_order) * math.log(p) for p in precisions)
        geo_mean = math.exp(p_log_sum)
    else:
        geo_mean = 0.0

    hyp_len = total.translation_length
    ref_len = total.reference_length
    # Where the script divides by zero, vlmkit returns the limits instead of raising:
    # nothing predicted -> brevity penalty 0 (exp(1 - 1/ratio) -> 0 as ratio -> 0), so bleu 0;
    # nothing to reference -> ratio reported as 0.0 (as sacrebleu does), penalty 1 (not short).
    ratio = float(hyp_len) / ref_len if ref_len > 0 else 0.0
    if hyp_len == 0:
        bp = 0.0
    elif ref_len == 0 or ratio > 1.0:
        bp = 1.0
    else:
        bp = math.exp(1 - 1.0 / ratio)

    return {
        "bleu": geo_mean * bp,
        "precisions": precisions,
        "brevity_penalty": bp,
        "length_ratio": ratio,
        "translation_length": hyp_len,
        "reference_length": ref_len,
    }


def hf_bleu(
    predictions: Sequence[str],
    references: Sequence[str] | Sequence[Sequence[str]],
    *,
    max_order: int = 4,
    smooth: bool = False,
    tokenize: Tokenizer | None = None,
) -> dict:
    """Corpus BLEU exactly as ``evaluate.load("bleu").compute(...)`` returns it.

    ``references`` holds one entry per prediction: a string, or a list of strings (several
    references). Returns ``{"bleu": float, "precisions": [float] * max_order,
    "brevity_penalty": float, "length_ratio": float, "translation_length": int,
    "reference_length": int}`` on evaluate's 0-1 scale.

    Inputs on which evaluate raises get a defined result instead: an empty corpus, or one whose
    predictions are all empty, scores ``bleu 0.0`` with ``brevity_penalty 0.0`` and
    ``length_ratio 0.0``; a corpus whose reference length is 0 (every sample's shortest reference
    is empty) but whose predictions are not empty has ``length_ratio 0.0`` and
    ``brevity_penalty 1.0``. Mismatched lengths, or a prediction with
    no reference at all, raise ``ValueError`` (evaluate raises too).
    """
    _check_max_order(max_order)
    if len(predictions) != len(references):
        raise ValueError(
            f"got {len(predictions)} predictions but {len(references)} references; "
            "give one reference (or list of references) per prediction"
        )
    tok = tokenize_13a if tokenize is None else tokenize
    matches = [0] * max_order
    possible = [0] * max_order
    hyp_total = 0
    ref_total = 0
    orders = range(max_order)
    for i, (pred, refs) in enumerate(zip(predictions, references, strict=True)):
        ref_tokens = [list(tok(r)) for r in _as_reference_list(refs, i)]
        m, p, hyp_len, ref_len = _sample_counts(list(tok(pred)), ref_tokens, max_order)
        for n in orders:
            matches[n] += m[n]
            possible[n] += p[n]
        hyp_total += hyp_len
        ref_total += ref_len
    total = BleuCounts(tuple(matches), tuple(possible), hyp_total, ref_total)
    return hf_bleu_from_statistics(total, max_order=max_order, smooth=smooth)
