"""Named text normalisation presets, built from jiwer's transformations.

A score is only reproducible when the reader knows what was done to the text first, so
normalisation is never ad-hoc: it is a `+`-joined set of named steps (`lowercase+punctuation`),
applied in one canonical order whatever order the user typed, and its canonical name goes into
every score's signature.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import jiwer

from vlmkit.errors import UsageError


def _nfkc(texts: list[str]) -> list[str]:
    return [unicodedata.normalize("NFKC", t) for t in texts]


_WHITESPACE_RUN = re.compile(r"\s+")


def _whitespace(texts: list[str]) -> list[str]:
    # jiwer's RemoveWhiteSpace only knows ASCII whitespace; OCR output is full of NBSP and
    # ideographic spaces, so this step uses Unicode's definition (\s in a str pattern).
    return [_WHITESPACE_RUN.sub(" ", t).strip() for t in texts]


# The steps in the order they are applied. Unicode compatibility folding comes first so that
# lowercasing and punctuation removal see canonical characters; whitespace tidying comes last
# because removing punctuation can leave double spaces behind.
# Each step is a factory: jiwer's RemovePunctuation scans all of Unicode when built (~0.4 s),
# which `vlmkit score` must not pay unless the step is used.
_STEPS: dict[str, tuple[str, Callable[[], Callable[[list[str]], list[str]]]]] = {
    "nfkc": ("Unicode NFKC: full-width and compatibility characters folded", lambda: _nfkc),
    "lowercase": ("lowercase every character", jiwer.ToLowerCase),
    "punctuation": ("delete Unicode punctuation (categories P*)", jiwer.RemovePunctuation),
    "whitespace": (
        "any Unicode whitespace run (newline, tab, NBSP) becomes one space; ends stripped",
        lambda: _whitespace,
    ),
}

# Shorthands a user can type instead of spelling out steps.
PRESETS: dict[str, tuple[str, ...]] = {
    "none": (),
    "basic": ("nfkc", "lowercase", "punctuation", "whitespace"),
}


def describe_presets() -> dict[str, str]:
    """Name -> one-line description of every step and shorthand, for --help and the README."""
    out = {name: doc for name, (doc, _) in _STEPS.items()}
    out["none"] = "compare texts exactly as written"
    out["basic"] = "nfkc+lowercase+punctuation+whitespace"
    return out


@dataclass(frozen=True)
class Normalization:
    """A normalisation preset: an ordered tuple of step names."""

    steps: tuple[str, ...] = ()

    @classmethod
    def parse(cls, spec: str, *, flag: str = "--norm") -> Normalization:
        """Parse `lowercase+whitespace`, `basic` or `none` into a canonical Normalization."""
        chosen: set[str] = set()
        for part in (p.strip() for p in spec.split("+")):
            if part in PRESETS:
                chosen.update(PRESETS[part])
            elif part in _STEPS:
                chosen.add(part)
            else:
                known = ", ".join([*PRESETS, *_STEPS])
                raise UsageError(
                    f"{flag}: unknown normalisation {part!r}",
                    hint=f"choose from {known}, joined with '+' (e.g. lowercase+whitespace)",
                )
        return cls(tuple(step for step in _STEPS if step in chosen))

    @property
    def name(self) -> str:
        """The canonical name written into signatures."""
        return "+".join(self.steps) or "none"

    @cached_property
    def _pipeline(self) -> list[Callable[[list[str]], list[str]]]:
        return [_STEPS[step][1]() for step in self.steps]

    def apply(self, texts: Sequence[str]) -> list[str]:
        """Normalise a list of texts (one pass per step, so a corpus costs one call per step)."""
        out = list(texts)
        for step in self._pipeline:
            out = step(out)
        return out

    def apply_one(self, text: str) -> str:
        return self.apply([text])[0]
