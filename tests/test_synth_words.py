"""Word sources: the bundled list, nltk's corpus, user files and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlmkit.errors import InputError, UsageError
from vlmkit.synth.words import BUNDLED_FILE, filter_words, load_words


def test_bundled_list_is_lowercase_words_with_source_and_licence():
    words = load_words("bundled")
    assert len(words.words) == 63_875
    assert all(w.isascii() and w.isalpha() and w.islower() for w in words.words)
    assert {"acknowledgement", "receipt", "invoice"} <= set(words.words)
    readme = (BUNDLED_FILE.parent / "README.md").read_text()
    assert "SCOWL" in readme and "LICENSE-SCOWL" in readme
    assert "Kevin Atkinson" in (BUNDLED_FILE.parent / "LICENSE-SCOWL").read_text()


def test_file_words_skip_comments_blanks_and_duplicates(tmp_path: Path):
    path = tmp_path / "w.txt"
    path.write_bytes("\ufeff# my words\r\nzebra\r\n\r\n  Apple \r\nzebra\r\nnaïve\r\n".encode())
    words = load_words(str(path))
    assert words.words == ("zebra", "Apple", "naïve")
    assert words.source == str(path)
    assert words.sha256 == load_words(str(path)).sha256


def test_digest_changes_with_the_words(tmp_path: Path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("one\ntwo\n")
    b.write_text("one\nthree\n")
    assert load_words(str(a)).sha256 != load_words(str(b)).sha256


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        (b"good\ntwo words\n", InputError, r"w\.txt:2: 'two words' is not a single word"),
        (b"good\nbad\tword\n", InputError, r"w\.txt:2: "),
        (b"ok\n\xff\xfe\n", InputError, r"w\.txt:2: not UTF-8"),
        (b"# only a comment\n\n", InputError, "no words in the file"),
    ],
)
def test_file_errors_name_the_line(tmp_path: Path, content, error, message):
    path = tmp_path / "w.txt"
    path.write_bytes(content)
    with pytest.raises(error, match=message):
        load_words(str(path))


def test_missing_file_and_folder(tmp_path: Path):
    with pytest.raises(InputError, match=r"--words: .* does not exist"):
        load_words(str(tmp_path / "nope.txt"))
    with pytest.raises(InputError, match="is a folder"):
        load_words(str(tmp_path))


@pytest.mark.parametrize(
    ("word", "bad"), [("don't", "'"), ("co-op", "-"), ("abc\u0301\u0301de", "\u0301")]
)
def test_alphanumeric_words_name_the_character(tmp_path: Path, word: str, bad: str):
    path = tmp_path / "w.txt"
    path.write_text(f"fine\n{word}\n", encoding="utf-8")
    with pytest.raises(InputError, match=rf"w\.txt:2: .* holds {bad!r}, which is not a letter"):
        load_words(str(path), alphanumeric=True)
    assert load_words(str(path)).words[1]  # without the option, any single word is fine


def test_words_are_nfc_normalised(tmp_path: Path):
    path = tmp_path / "w.txt"
    path.write_text("cafe\u0301\n12ab\n", encoding="utf-8")  # e + combining acute accent
    assert load_words(str(path), alphanumeric=True).words == ("café", "12ab")


@pytest.fixture
def nltk_data_path(tmp_path: Path, monkeypatch):
    """nltk looking for corpora only in tmp_path, with its words corpus not yet loaded."""
    import nltk
    from nltk.corpus import words as corpus

    def unload() -> None:
        # A loaded LazyCorpusLoader keeps its reader; _unload makes it look again.
        getattr(corpus, "_unload", lambda: None)()

    unload()
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    yield tmp_path
    unload()


def test_nltk_source_without_its_corpus_says_how_to_get_it(nltk_data_path: Path):
    with pytest.raises(UsageError, match="nltk 'words' corpus is not installed") as error:
        load_words("nltk")
    assert "nltk.downloader words" in error.value.hint


def test_nltk_source_reads_a_local_corpus(nltk_data_path: Path):
    corpus_dir = nltk_data_path / "corpora" / "words"
    corpus_dir.mkdir(parents=True)
    (corpus_dir / "en").write_text("aardvark\nzygote\n")
    (corpus_dir / "README").write_text("test corpus\n")
    assert load_words("nltk").words == ("aardvark", "zygote")


def test_filter_by_length():
    assert filter_words(("a", "abc", "abcdef"), 2, 5) == ("abc",)
