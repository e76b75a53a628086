"""Word sources for the text generators: the bundled list, nltk's words corpus, or a user's file."""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from vlmkit.errors import InputError, MissingExtraError, UsageError

BUNDLED = "bundled"
NLTK = "nltk"
BUNDLED_FILE = Path(__file__).parent / "data" / "words.txt"


@dataclass(frozen=True)
class WordList:
    """Words in file order, without duplicates, and where they came from."""

    words: tuple[str, ...]
    source: str
    """"bundled", "nltk" or the file path as given."""
    sha256: str
    """Digest of the words as one newline-joined text: two runs used the same list iff equal."""


def load_words(source: str, *, alphanumeric: bool = False) -> WordList:
    """Read a word source: `bundled`, `nltk`, or a UTF-8 file with one word per line.

    Words are NFC-normalised (an accent typed as a combining mark joins its letter). In files,
    blank lines and lines starting with `#` are skipped; a line with a space or a control
    character is an error naming the line, since it cannot be one word. With `alphanumeric`,
    so is a word with any character that is not a letter or digit (nltk's words that have one
    are skipped instead: the corpus is not the user's to fix).
    """
    if source == BUNDLED:
        words = _read_word_file(BUNDLED_FILE, alphanumeric)
    elif source == NLTK:
        words = [w for w in _read_nltk_words() if not alphanumeric or not non_alphanumeric(w)]
    else:
        words = _read_word_file(Path(source), alphanumeric)
    unique = tuple(dict.fromkeys(words))
    digest = hashlib.sha256("\n".join(unique).encode("utf-8")).hexdigest()
    return WordList(unique, source, digest)


def non_alphanumeric(word: str) -> str:
    """The word's characters that are not letters or digits (marks and punctuation included)."""
    return "".join(c for c in word if not c.isalnum() or unicodedata.category(c).startswith("M"))


def _read_word_file(path: Path, alphanumeric: bool) -> list[str]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(
            f"--words: {path} does not exist",
            hint=f"Give a text file with one word per line, or '{BUNDLED}' or '{NLTK}'.",
        ) from None
    except IsADirectoryError:
        raise InputError(f"--words: {path} is a folder", hint="Give a text file.") from None
    except OSError as error:
        raise InputError(f"--words: cannot read {path}: {error.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InputError(
            f"{path}:{line}: not UTF-8 (byte {error.start})", hint="Save the file as UTF-8."
        ) from None
    words = []
    for number, raw in enumerate(text.splitlines(), start=1):
        word = unicodedata.normalize("NFC", raw.strip())
        if not word or word.startswith("#"):
            continue
        if any(c.isspace() or not c.isprintable() for c in word):
            raise InputError(
                f"{path}:{number}: {word!r} is not a single word (it holds a space or a "
                "control character)",
                hint="Put one word per line.",
            )
        if alphanumeric and non_alphanumeric(word):
            raise InputError(
                f"{path}:{number}: {word!r} holds {non_alphanumeric(word)[0]!r}, which is not "
                "a letter or digit",
                hint="Each character may be circled, and the answer must be a letter or digit: "
                "remove or fix that line.",
            )
        words.append(word)
    if not words:
        raise InputError(f"{path}: no words in the file", hint="Put one word per line.")
    return words


def _read_nltk_words() -> list[str]:
    try:
        from nltk.corpus import words as corpus
    except ImportError:
        raise MissingExtraError(
            "--words nltk needs the nltk package",
            hint="pip install nltk, or use --words bundled.",
        ) from None
    try:
        return [w for w in corpus.words() if w.strip()]
    except LookupError:
        raise UsageError(
            "--words nltk: the nltk 'words' corpus is not installed on this machine",
            hint="Run python -m nltk.downloader words where a network is reachable, "
            "or use --words bundled.",
        ) from None


def filter_words(words: tuple[str, ...], min_length: int, max_length: int) -> tuple[str, ...]:
    """Words whose length is within [min_length, max_length]."""
    return tuple(w for w in words if min_length <= len(w) <= max_length)
