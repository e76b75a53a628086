"""Deterministic OCR-like (reference, prediction) pairs for benchmarks.

Lengths are heavy-tailed like real OCR output: mostly short receipt lines, some paragraphs and a
few page-long segments (those dominate edit-distance costs, so a benchmark without them flatters
slow code). Predictions are the references with the errors OCR models make: character typos,
dropped, inserted and substituted words, moved spans, case changes; some are exact.
"""

from __future__ import annotations

import random

_WORDS = (
    "total subtotal tax cash change item qty price amount paid card visa invoice date time "
    "receipt store address street road no tel fax thank you please come again discount member "
    "nasi goreng ayam teh manis es jeruk kopi susu roti bakar mie kuah bakso sate sambal "
    "the of and to in for with on at by from this that is are was be have not rounding "
    "gst sst service charge table order server guest bill total_due balance"
).split()
_PUNCT = [",", ".", ":", "-", "/", "(", ")", "#", "@", "%"]
_EXOTIC = ["ü", "é", "ñ", "ß", "€", "¥", "—", "ō", "č", "日本", "東京", "Ä"]


def _token(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.22:
        return f"{rng.randint(0, 999)}{rng.choice(['', '.000', ',500', '.00'])}"
    if roll < 0.27:
        return rng.choice(_PUNCT)
    if roll < 0.29:
        return rng.choice(_EXOTIC)
    word = rng.choice(_WORDS)
    return word.upper() if rng.random() < 0.3 else word


def _length(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.85:
        return rng.randint(1, 12)
    if roll < 0.98:
        return rng.randint(13, 60)
    return rng.randint(61, 300)


def _typo(word: str, rng: random.Random) -> str:
    if not word:
        return word
    i = rng.randrange(len(word))
    op = rng.random()
    if op < 0.4:
        return word[:i] + rng.choice("abcdeilmnorst01") + word[i + 1 :]
    if op < 0.7:
        return word[:i] + word[i + 1 :]
    return word[:i] + rng.choice("aeinrt") + word[i:]


def _corrupt(words: list[str], rng: random.Random) -> list[str]:
    out = list(words)
    rate = rng.choice([0.02, 0.05, 0.1, 0.2, 0.4])
    for i in range(len(out)):
        if rng.random() < rate:
            out[i] = _typo(out[i], rng)
    for _ in range(int(len(out) * rate / 2) + (rng.random() < rate)):
        op = rng.random()
        if op < 0.35 and out:
            del out[rng.randrange(len(out))]
        elif op < 0.7:
            out.insert(rng.randrange(len(out) + 1), _token(rng))
        elif op < 0.85 and len(out) > 3:
            # a moved span, the case TER's shifts exist for
            start = rng.randrange(len(out) - 2)
            span = out[start : start + rng.randint(1, 3)]
            del out[start : start + len(span)]
            at = rng.randrange(len(out) + 1)
            out[at:at] = span
        elif out:
            j = rng.randrange(len(out))
            out[j] = out[j].swapcase()
    return out


def ocr_pairs(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Return `n` (references, predictions) lists, identical for the same `n` and `seed`."""
    rng = random.Random(seed)
    references, predictions = [], []
    for _ in range(n):
        words = [_token(rng) for _ in range(_length(rng))]
        references.append(" ".join(words))
        roll = rng.random()
        if roll < 0.2:
            predictions.append(references[-1])
        elif roll < 0.22:
            predictions.append("")
        else:
            predictions.append(" ".join(_corrupt(words, rng)))
    return references, predictions
