"""Small BPE tokenizers for the tiny models, trained offline and deterministically on fixed text."""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import product
from typing import Any

from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import (
    GemmaTokenizer,
    GPT2Tokenizer,
    LlamaTokenizer,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
    Qwen2Tokenizer,
)

# Words of the tasks vlmkit trains on (receipts, OCR, circled letters) and of the prompts and chat
# templates, so that the tiny vocabularies hold whole words rather than letters only.
_WORDS = (
    "the of and to in is was for on that with as at by from this be are or an it not have you "
    "your all can one which will there their what when more about other into time has were "
    "read text image write extract receipt json return answer which letter circled question "
    "total subtotal tax cash change price qty quantity item items amount discount service card "
    "credit visa master date time table bill thank thanks please come again store shop cafe "
    "restaurant address phone number invoice no company name menu unit count sum due paid "
    "coffee tea latte milk sugar ice hot cold water juice bread rice chicken beef fish soup "
    "noodle fried cake cookie sandwich salad burger pizza sauce cheese egg tofu green black "
    "user assistant system model you are a helpful picture video describe list only output "
    "quick brown fox jumps over lazy dog hello world yes no true false null none"
).split()

_ACCENTED = (
    "café crème brûlée naïve façade déjà vu œuvre à la carte",
    "Grüße aus München, Straße 12, Zürich: 12,50 € — danke schön",
    "señor, año, mañana, jalapeño; São Paulo; coração; pão de açúcar",
    "Ελληνικά, русский текст, 東京, 日本語, 한국어, مرحبا",
    "5 × 3 = 15 ± 0,5 · 100 % · £ 9.99 · ¥ 1,200 · ₹ 450 · “quoted” ‘text’ …",
)

_ITEMS = ("Coffee", "ICE TEA", "Latte", "DONAT GULA", "Nasi Goreng", "CHICKEN KATSU", "Croissant")
_PRICES = ("4.50", "12,50", "60.000", "17500", "11,000", "0.99", "250.00")


def _receipts() -> list[str]:
    """CORD- and SROIE-shaped JSON targets built from fixed lists (no randomness)."""
    texts = []
    for index, (item, price) in enumerate(product(_ITEMS, _PRICES)):
        count = index % 4 + 1
        menu = [{"nm": item, "cnt": str(count), "price": price}]
        receipt = {
            "menu": menu,
            "sub_total": {"subtotal_price": price, "tax_price": "1.250", "discount_price": "-500"},
            "total": {"total_price": price, "cashprice": "100.000", "changeprice": "40.000"},
        }
        texts.append(json.dumps(receipt, ensure_ascii=False))
    texts.append(
        json.dumps(
            {
                "company": "BOOK TA .K (TAMAN DAYA) SDN BHD",
                "date": "25/12/2018",
                "address": "NO.53 55,57 & 59, JALAN SAGU 18, TAMAN DAYA, 81100 JOHOR BAHRU, JOHOR.",
                "total": "9.00",
            }
        )
    )
    texts.append(
        '{"gt_parse": {"menu": {"nm": "-TICKET CP", "num": "901016", "unitprice": "@11000"}}}'
    )
    return texts


def training_corpus() -> list[str]:
    """The texts every tiny tokenizer is trained on, in a fixed order."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    texts = [
        " ".join(_WORDS),
        " ".join(word.capitalize() for word in _WORDS),
        " ".join(word.upper() for word in _WORDS[:60]),
        " ".join(letters) + " " + " ".join(letters.upper()),
        "0 1 2 3 4 5 6 7 8 9 10 12 15 20 25 50 100 1000 2024 2025 3.14 4.50 12,50 1.000.000",
        "Extract the receipt as JSON. Read the text in the image. Which letter is circled?",
        "You are a helpful assistant. Answer with one letter. Return only JSON.",
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ \t\n\n  ",
        *_ACCENTED,
        *_receipts(),
    ]
    # Repeated so that frequent words and JSON keys win merges over one-off strings.
    return texts * 3


BYTE_TOKENS = tuple(f"<0x{byte:02X}>" for byte in range(256))
"""SentencePiece-style byte tokens: a byte-fallback BPE spells any unseen character with them."""

# Llama 3's pre-tokenisation: contractions, letter runs, 1-3 digits, punctuation runs, spaces.
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _ordered(
    learnt: dict[str, int], merges: list, leading: Sequence[str]
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """`leading` tokens on the first ids, in order, then the learnt ones in the trainer's order."""
    ordered = dict.fromkeys([*leading, *sorted(learnt, key=learnt.__getitem__)])
    return {token: index for index, token in enumerate(ordered)}, [tuple(m) for m in merges]


def _trained_vocab(
    tokenizer: PreTrainedTokenizerBase, vocab_size: int, leading: Sequence[str]
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocab and merges learnt with a byte-level `tokenizer`'s own normaliser and pre-tokeniser."""
    trained = tokenizer.train_new_from_iterator(
        training_corpus(), vocab_size=vocab_size, show_progress=False
    )
    model = json.loads(trained.backend_tokenizer.to_str())["model"]
    return _ordered(model["vocab"], model["merges"], leading)


def _sentencepiece_vocab(
    vocab_size: int, leading: Sequence[str], prepend_scheme: str
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocab and merges for a byte-fallback BPE over "▁"-marked words, as SentencePiece learns.

    Gemma and Llama 1/2 run BPE over the whole text with spaces turned into "▁"; trained that
    way BPE would learn pieces spanning several words of the corpus. Trained on words that each
    carry the "▁" of the space before them, it learns "▁the", "▁price", ...: merges that never
    cross a word boundary, which the families' own pipelines then apply unchanged.
    """
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="▁", prepend_scheme=prepend_scheme, split=True
    )
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False)
    backend.train_from_iterator(training_corpus(), trainer=trainer)
    model = json.loads(backend.to_str())["model"]
    return _ordered(model["vocab"], model["merges"], [*leading, *BYTE_TOKENS])


def _with_tokens(
    tokenizer: PreTrainedTokenizerBase, special: Sequence[str], plain: Sequence[str] = ()
) -> PreTrainedTokenizerBase:
    """`tokenizer` with extra special tokens (never split, dropped by skip_special_tokens) and
    plain added tokens appended after its learnt vocabulary, as the hub checkpoints have them."""
    if special:
        tokenizer.add_special_tokens(
            {
                "extra_special_tokens": [
                    AddedToken(t, special=True, normalized=False) for t in special
                ]
            },
            replace_extra_special_tokens=False,
        )
    if plain:
        tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in plain])
    return tokenizer


def gemma_tokenizer(
    vocab_size: int,
    special: Sequence[str] = (),
    trailing_special: Sequence[str] = (),
    plain: Sequence[str] = (),
    **kwargs: Any,
) -> GemmaTokenizer:
    """A byte-fallback Gemma tokenizer: `<pad>`=0, `<eos>`=1, `<bos>`=2, `<unk>`=3, `<mask>`=4,
    then `special`, the 256 byte tokens and the learnt pieces; `trailing_special` and `plain`
    tokens come last. Named special tokens (boi_token=...) go in `kwargs`."""
    core = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", *special]
    vocab, merges = _sentencepiece_vocab(vocab_size, core, prepend_scheme="never")
    tokenizer = GemmaTokenizer(
        vocab=vocab, merges=merges, add_bos_token=True, extra_special_tokens=list(special), **kwargs
    )
    return _with_tokens(tokenizer, trailing_special, plain)


def llama_tokenizer(
    vocab_size: int, trailing_special: Sequence[str] = (), **kwargs: Any
) -> LlamaTokenizer:
    """A byte-fallback (SentencePiece-style) Llama 1/2 tokenizer: `<unk>`=0, `<s>`=1, `</s>`=2,
    the byte tokens, the learnt pieces, then `trailing_special`."""
    core = ["<unk>", "<s>", "</s>"]
    vocab, merges = _sentencepiece_vocab(vocab_size, core, prepend_scheme="first")
    tokenizer = LlamaTokenizer(vocab=vocab, merges=merges, add_bos_token=True, **kwargs)
    return _with_tokens(tokenizer, trailing_special)


def gpt2_tokenizer(
    vocab_size: int, special: Sequence[str], trailing_special: Sequence[str] = (), **kwargs: Any
) -> GPT2Tokenizer:
    """A byte-level GPT-2 tokenizer (SmolLM's kind): `special` first, then the learnt pieces
    over the 256 byte symbols, then `trailing_special`."""
    vocab, merges = _trained_vocab(GPT2Tokenizer(), vocab_size, special)
    tokenizer = GPT2Tokenizer(
        vocab=vocab, merges=merges, extra_special_tokens=list(special), **kwargs
    )
    return _with_tokens(tokenizer, trailing_special)


def qwen2_tokenizer(vocab_size: int, special: Sequence[str], **kwargs: Any) -> Qwen2Tokenizer:
    """A byte-level Qwen2 tokenizer: `special` first, then the learnt pieces."""
    vocab, merges = _trained_vocab(Qwen2Tokenizer(), vocab_size, special)
    return Qwen2Tokenizer(vocab=vocab, merges=merges, extra_special_tokens=list(special), **kwargs)


def llama3_tokenizer(
    vocab_size: int,
    special: Sequence[str],
    trailing_special: Sequence[str] = (),
    *,
    bos_token: str,
    **kwargs: Any,
) -> PreTrainedTokenizerFast:
    """A Llama 3 style byte-level BPE in a bare `PreTrainedTokenizerFast`, as Llama 3.2 Vision
    ships it: the pipeline lives in tokenizer.json, which reloads verbatim, and a
    post-processor puts `bos_token` before every encoded text."""

    def pipeline(vocab: dict[str, int], merges: list[tuple[str, str]]) -> Tokenizer:
        backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=True))
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(_LLAMA3_SPLIT), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
        backend.decoder = decoders.ByteLevel()
        return backend

    untrained = PreTrainedTokenizerFast(tokenizer_object=pipeline({}, []))
    vocab, merges = _trained_vocab(untrained, vocab_size, special)
    backend = pipeline(vocab, merges)
    backend.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{bos_token} $A",
                pair=f"{bos_token} $A {bos_token}:1 $B:1",
                special_tokens=[(bos_token, vocab[bos_token])],
            ),
        ]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos_token,
        extra_special_tokens=list(special),
        **kwargs,
    )
    return _with_tokens(tokenizer, trailing_special)
