"""`vqa`: question/answers sets (DocVQA, InfographicVQA, ChartQA, TextVQA) as the hub keeps them.

The layouts are those of `tables.py` (parquet shards, save_to_disk, an imagefolder whose
metadata.jsonl has the columns); a repository with several configurations (lmms-lab/DocVQA holds
DocVQA/ and InfographicVQA/) is pointed at one of them. Each row needs an image, a question and
its answers, under the names the hub's copies use:
- question: `question` (DocVQA, InfographicVQA, TextVQA, lmms-lab/ChartQA) or `query`
  (HuggingFaceM4/ChartQA);
- answers: `answers`, a list (DocVQA, InfographicVQA, TextVQA's ten; VQAv2's
  `{"answer": ...}` entries too), `label`, a list (HuggingFaceM4/ChartQA), or `answer`, one
  string (lmms-lab/ChartQA). Blank answers are dropped.

Each record has task `vqa`, the question as its prompt (`--prompt` may wrap it:
"{question} Answer with a single word."), every answer in `answers` as given (duplicates kept:
VQA accuracy counts annotators), and as `target`, the one `finetune` trains on, the most
frequent answer, the first of equals (so the first where all differ, as in DocVQA). Ids are
`vqa/SPLIT/KEY`, KEY the row's question id (`questionId`, `question_id`) where it has one,
else `row-N`, N its row number. Answers that are numbers become their text. The row's other
short columns (numbers, texts, short lists) go to `meta`; long ones (OCR tokens) are left out.
A row whose answers are hidden (the test splits of DocVQA and TextVQA) is a bad row: those
splits are scored by the benchmarks' servers.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from vlmkit.convert.base import BadRow, Converter, SourceRow
from vlmkit.convert.tables import Columns, TableRow, describe_folder, layouts, open_table
from vlmkit.errors import UsageError

QUESTION_COLUMNS = ("question", "query")
ANSWER_COLUMNS = ("answers", "label", "answer")
ID_COLUMNS = ("questionId", "question_id")
VQA_COLUMNS = Columns(
    (QUESTION_COLUMNS, ANSWER_COLUMNS),
    "A VQA dataset has an image, a question (question or query) and its answers (answers, "
    "label or answer) per row.",
)
QUESTION = "{question}"
_PLAIN_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
RESERVED_META = frozenset(
    {"source", "split", "row", "source_file", "image_sha256", "original_size", "max_side"}
)
"""What vlmkit writes into `meta` itself (converter, split, row, the image's origin)."""
_META_TEXT = 200
_META_LIST = 20


class VqaConverter(Converter):
    name: ClassVar[str] = "vqa"
    duplicate_hint: ClassVar[str] = (
        "Ids come from the question ids (questionId, question_id): the source repeats one; "
        "fix it there, or drop one of the two rows."
    )
    tasks: ClassVar[tuple[str, ...]] = ("vqa",)
    prompts: ClassVar[dict[str, str]] = {"vqa": QUESTION}
    layouts: ClassVar[tuple[str, ...]] = layouts(VQA_COLUMNS)

    def __init__(self, src: str, task: str | None = None) -> None:
        super().__init__(src, task)
        root = Path(src)
        table = open_table(root, VQA_COLUMNS)
        if table is None:
            raise self.unknown_layout(describe_folder(root))
        self.table = table
        self.layout = table.layout

    def splits(self) -> list[str]:
        return self.table.splits()

    def check_prompt(self, prompt: str | None) -> None:
        if prompt is not None and QUESTION not in prompt:
            raise UsageError(
                f"--prompt {prompt!r}: a vqa record's prompt is its own question",
                hint=f"Wrap the question with {QUESTION}, e.g. --prompt "
                f"'{QUESTION} Answer with a single word or phrase.', or drop --prompt.",
            )

    def prompt_for(self, row: SourceRow, prompt: str | None) -> str:
        return (prompt or QUESTION).replace(QUESTION, row.prompt or "")

    def rows(self, split: str) -> Iterator[SourceRow | BadRow]:
        for raw in self.table.rows(split):
            yield raw if isinstance(raw, BadRow) else vqa_row(raw)


def vqa_row(raw: TableRow) -> SourceRow | BadRow:
    """A table row as a VQA sample, or why it cannot be one."""
    values = raw.values
    question = _first(values, QUESTION_COLUMNS)
    if not isinstance(question, str):
        return BadRow(raw.where, f"the question is {_shown(question)}, not text", "bad question")
    if not question.strip():
        return BadRow(raw.where, "the question is empty", "bad question")
    answers = _answers(_first(values, ANSWER_COLUMNS))
    if isinstance(answers, BadAnswers):
        return BadRow(raw.where, answers.reason, answers.category)
    meta: dict[str, Any] = {**_short_columns(values), "row": raw.index}
    if raw.source_file:
        meta["source_file"] = raw.source_file
    key = _key(values, raw)
    return SourceRow(key, raw.where, raw.image, most_frequent(answers), meta, question, answers)


def _first(values: dict[str, Any], names: tuple[str, ...]) -> Any:
    return next((values[name] for name in names if name in values), None)


@dataclass(frozen=True)
class BadAnswers:
    reason: str
    category: str


def _shown(value: Any) -> str:
    """A source value in a message: JSON where it is JSON, else its repr (bytes), short."""
    try:
        return json.dumps(value, ensure_ascii=False)[:40]
    except (TypeError, ValueError):
        return repr(value)[:40]


def _answers(value: Any) -> tuple[str, ...] | BadAnswers:
    """The answers as a tuple of strings (a number as its text; VQAv2's `{"answer": ...}`
    entries as their answer; blank ones dropped), or why they are not."""
    if isinstance(value, str):
        value = [value]
    if value is None or value == []:
        return BadAnswers("no answers (a test split whose answers are hidden?)", "no answers")
    if not isinstance(value, list):
        return BadAnswers(f"the answers are {type(value).__name__}, not a list of strings",
                          "bad answers")  # fmt: skip
    texts = []
    for item in value:
        if isinstance(item, dict) and "answer" in item:  # lmms-lab/VQAv2's annotator entries
            item = item["answer"]
        number = isinstance(item, (int, float)) and not isinstance(item, bool)
        if number and math.isfinite(item):
            texts.append(str(item))
        elif isinstance(item, str):
            texts.append(item)
        else:
            return BadAnswers(f"the answers hold {_shown(item)}, not only strings", "bad answers")
    # A blank answer would be in every prediction (OCRBench's substring rule): not an answer.
    texts = [text for text in texts if text.strip()]
    if not texts:
        return BadAnswers("every answer is empty", "no answers")
    return tuple(texts)


def most_frequent(answers: tuple[str, ...]) -> str:
    """The answer given most often, the first of equals (Counter keeps first-seen order)."""
    return Counter(answers).most_common(1)[0][0]


def _key(values: dict[str, Any], raw: TableRow) -> str:
    """The row's question id where it has a plain one, else `row-N` (a form no numeric
    question id takes, so the two never collide)."""
    own = _first(values, ID_COLUMNS)
    if isinstance(own, float) and own.is_integer():
        own = int(own)  # a column of ids with a gap reads as floats (12.0)
    if isinstance(own, int) and not isinstance(own, bool) and own >= 0:
        return str(own)
    if isinstance(own, str) and _PLAIN_KEY.fullmatch(own):
        return own
    # Not the file name's number, as for Donut tables: several questions share one image.
    return f"row-{raw.index:06d}"


def _short_columns(values: dict[str, Any]) -> dict[str, Any]:
    """The columns worth keeping for analysis: scalars and short lists of scalars, not the
    question, answers, image bytes or OCR token lists."""
    skip = {*QUESTION_COLUMNS, *ANSWER_COLUMNS}
    # A column named like one of vlmkit's own meta keys keeps its value under another name.
    return {(f"source_{name}" if name in RESERVED_META else name): value
            for name, value in values.items()
            if name not in skip and _worth_keeping(value)}  # fmt: skip


def _worth_keeping(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)  # JSON has no NaN
    if isinstance(value, str):
        return len(value) <= _META_TEXT
    if isinstance(value, list):
        return len(value) <= _META_LIST and all(
            isinstance(v, (str, int, bool)) or (isinstance(v, float) and math.isfinite(v))
            for v in value
        )
    return isinstance(value, (bool, int))
