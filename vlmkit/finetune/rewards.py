"""Rewards for `--objective grpo`: vlmkit's own metrics, per completion, as `score` computes them.

`--reward field_f1` or `--reward "field_f1=1,json_valid=0.2"`: each component is a metric (or
`format`) and its weight; the reward of a completion is the weighted sum of its components.
A component's value is the metric's per-sample value for that completion against the record's
target (and `answers`), computed by the metric's own code: the number `vlmkit score
--per-sample` reports for that completion, brought to [0, 1] by one documented rule:

- a metric on the 0-100 scale (BLEU, chrF, TER) is divided by 100;
- a lower-is-better metric becomes 1 - min(value, 1): CER 0.25 is a reward of 0.75, and a CER
  above 1 (an answer longer than twice its target) is 0, not negative;
- the result is clipped to [0, 1] (sentence BLEU can exceed 100 by a rounding error).

Weights go from 0 to 1000: every component already rises with quality.

`format` rewards the task's answer format: a whole answer that is one JSON object or array
(json task, as `json_strict`), or a letter in curly brackets, `{x}` (letter task, as
`letter_accuracy_strict` finds it). Corpus-only metrics (`hf_bleu`, `hf_ter`) have no
per-sample value and cannot be rewards; a metric that the dataset's task does not produce
(`field_f1` on letters) is refused.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmkit.errors import UsageError

FORMAT = "format"
"""The format reward's name in `--reward`."""

MIN_ANNOTATORS = 4
"""VQA accuracy reaches 1 when three other annotators agree: a reward needs four answers."""

MAX_WEIGHT = 1000.0
"""Weights are relative: above this they only risk overflowing the reward."""

TEXT_METRICS = ("cer", "wer", "bleu", "chrf", "ter", "exact_match")
"""Metrics any text answer has (a JSON or VQA answer is text too)."""

TASK_REWARDS: dict[str, tuple[str, ...]] = {
    "ocr": TEXT_METRICS,
    "json": ("field_f1", "ted_accuracy", "json_valid", "json_strict", *TEXT_METRICS, FORMAT),
    "letter": ("letter_accuracy", "letter_accuracy_strict", "exact_match", FORMAT),
    "vqa": ("anls", "vqa_accuracy", "relaxed_accuracy", "ocrbench_match", *TEXT_METRICS),
}
"""The rewards each task produces."""


@dataclass(frozen=True)
class Component:
    """One term of the reward: a metric (or `format`) and its weight."""

    name: str
    weight: float

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "weight": self.weight, "rule": reward_rule(self.name)}


def parse_reward(spec: str, flag: str = "--reward") -> tuple[Component, ...]:
    """`field_f1` or `field_f1=1,json_valid=0.2` as components, every name and weight checked."""
    from vlmkit.metrics import METRICS, metric_class

    components: list[Component] = []
    for part in spec.split(","):
        raw_name, sep, raw_weight = (piece.strip() for piece in part.partition("="))
        if not raw_name:
            raise UsageError(
                f"{flag} {spec!r}: an empty reward name",
                hint='e.g. --reward field_f1, or --reward "field_f1=1,json_valid=0.2"',
            )
        weight = _weight(raw_weight, raw_name, spec, flag) if sep else 1.0
        name = raw_name.lower()
        if name not in METRICS and name != FORMAT:
            close = difflib.get_close_matches(name, [*METRICS, FORMAT], n=1)
            raise UsageError(
                f"{flag} {raw_name!r}: not a metric vlmkit has"
                + (f" (did you mean {close[0]!r}?)" if close else ""),
                hint=f"rewards: the per-sample metrics of vlmkit metrics, or {FORMAT}",
            )
        if name != FORMAT and metric_class(name).corpus_only:
            usable = [n for n in METRICS if not metric_class(n).corpus_only]
            raise UsageError(
                f"{flag} {name}: it is a corpus-level figure, with no value per completion",
                hint=f"rewards are per-sample metrics: {', '.join(usable)}, or format",
            )
        if any(c.name == name for c in components):
            raise UsageError(f"{flag} {spec!r}: {name} is named twice", hint="name it once")
        components.append(Component(name, weight))
    if all(c.weight == 0 for c in components):
        raise UsageError(f"{flag} {spec!r}: every weight is 0", hint="give some reward a weight")
    return tuple(components)


def canonical_reward(spec: str) -> str:
    """`spec` written one way (`Letter_Accuracy, format=0.20` -> `letter_accuracy=1,format=0.2`),
    so a resume compares rewards, not spellings."""
    return ",".join(f"{c.name}={_exact(c.weight)}" for c in parse_reward(spec))


def reward_sum(components: Sequence[Component]) -> str:
    """The reward as a formula: `reward = 1 * field_f1 + 0.2 * format`."""
    return "reward = " + " + ".join(f"{_exact(c.weight)} * {c.name}" for c in components)


def _exact(weight: float) -> str:
    """The weight's shortest exact text: 1, 0.2, 0.1234567 (never rounded, as `:g` would)."""
    text = repr(weight)
    return text.removesuffix(".0")


def _weight(raw: str, name: str, spec: str, flag: str) -> float:
    try:
        weight = float(raw)
    except ValueError:
        weight = math.nan
    if not math.isfinite(weight):
        raise UsageError(
            f"{flag} {spec!r}: the weight of {name} is {raw!r}, not a finite number",
            hint=f'e.g. --reward "{name}=1"',
        )
    if not 0 <= weight <= MAX_WEIGHT:
        raise UsageError(
            f"{flag} {spec!r}: the weight of {name} is {weight:g}; weights are from 0 to "
            f"{MAX_WEIGHT:g}",
            hint="every component is already 'higher is better' in [0, 1]: weigh what matters "
            "more higher, not the rest below 0",
        )
    return weight


def reward_rule(name: str) -> str:
    """How a component's value becomes a reward in [0, 1], in words (for the manifest)."""
    if name == FORMAT:
        return "1 when the answer has the task's format, else 0"
    from vlmkit.metrics import metric_class

    cls = metric_class(name)
    value = "value / 100" if cls.scale == "0-100" else "value"
    return value if cls.higher_is_better else f"1 - min({value}, 1)"


def check_targets(components: Sequence[Component], data: Any, flag: str = "--reward") -> None:
    """Refuse records a reward cannot be computed against: VQA accuracy without annotators'
    answers, JSON rewards against a target that is not JSON (every answer would match it)."""
    names = {c.name for c in components}
    for number, record in enumerate(data.records, start=1):
        where = f"{data.metadata}:{number}"
        if "vqa_accuracy" in names and len(record.answers or ()) < MIN_ANNOTATORS:
            raise UsageError(
                f"{flag} vqa_accuracy: {where} has {len(record.answers or ())} answers; it "
                f"counts agreeing annotators, and below {MIN_ANNOTATORS} no answer can earn 1 "
                "(with one, every answer earns 0)",
                hint="use anls or exact_match, or records with the annotators' answers (VQAv2, "
                "TextVQA: ten)",
            )
        json_rewards = names & {"field_f1", "ted_accuracy"}
        if json_rewards and _unreadable_json(record.target):
            raise UsageError(
                f"{flag} {', '.join(sorted(json_rewards))}: the target of {where} is not a JSON "
                "object or array, so any answer would match its empty reading",
                hint="fix that target, or reward it with cer / exact_match",
            )


def _unreadable_json(target: str | None) -> bool:
    from vlmkit.structured import parse_structured

    return parse_structured(target or "").value is None


def check_task(components: Sequence[Component], tasks: set[str], flag: str = "--reward") -> None:
    """Refuse a reward the dataset's task does not produce (or several tasks at once)."""
    if len(tasks) > 1:
        raise UsageError(
            f"{flag}: the training set mixes tasks ({', '.join(sorted(tasks))})",
            hint="train one task at a time, so that one reward means the same on every record",
        )
    [task] = tasks
    produced = TASK_REWARDS.get(task, TEXT_METRICS)
    for component in components:
        if component.name not in produced:
            raise UsageError(
                f"{flag} {component.name}: the {task} task does not produce it",
                hint=f"rewards for {task}: {', '.join(produced)}",
            )


def as_reward(name: str, value: float) -> float:
    """A metric's per-sample value as a reward in [0, 1] (see the module docstring)."""
    from vlmkit.metrics import metric_class

    cls = metric_class(name)
    if cls.scale == "0-100":
        value /= 100.0
    reward = value if cls.higher_is_better else 1.0 - min(value, 1.0)
    return min(max(reward, 0.0), 1.0)  # sentence BLEU can end a rounding error above 100


def component_values(
    name: str, completions: Sequence[str], targets: Sequence[str], tasks: Sequence[str],
    answers: Sequence[Sequence[str] | None] | None = None,
) -> list[float]:  # fmt: skip
    """Each completion's reward for one component, computed by vlmkit's metric code."""
    from vlmkit.metrics import metric_class
    from vlmkit.metrics.base import Batch, MetricOptions

    options = MetricOptions()
    if name == FORMAT:
        return [_has_format(text, task) for text, task in zip(completions, tasks, strict=True)]
    metric = metric_class(name)(options)
    batch = Batch(list(completions), list(targets), options, answers)
    stats = metric.statistics(batch)
    return [as_reward(name, metric.sample_value(row)) for row in stats]


def _has_format(text: str, task: str) -> float:
    if task == "json":
        from vlmkit.structured import is_strict_json

        return float(is_strict_json(text))
    from vlmkit.metrics.answer import extract_letter

    return float(extract_letter(text, strict=True)[0] is not None)


def completion_text(completion: Any) -> str:
    """TRL's completion as text: a conversational one is a list of assistant messages."""
    if isinstance(completion, str):
        return completion
    parts = []
    for message in completion:
        content = message.get("content", "")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if p.get("type") == "text")
        parts.append(content)
    return "".join(parts)


class RewardFunctions:
    """The reward as TRL's reward functions, one per component (TRL logs each one's mean and
    spread, and weighs them), recording every completion's components to `completions.jsonl`."""

    def __init__(
        self, components: Sequence[Component], log_path: Path | None, steps: int = 1
    ) -> None:
        self.components = tuple(components)
        self.log_path = log_path
        self.steps = steps
        """Optimizer steps each generation serves: its rows name the first and the last."""
        self._pending: dict[str, list[float]] = {}

    @property
    def weights(self) -> list[float]:
        return [component.weight for component in self.components]

    def functions(self) -> list[Callable[..., list[float]]]:
        return [self._function(component.name) for component in self.components]

    def _function(self, name: str) -> Callable[..., list[float]]:
        def reward(completions: list[Any], target: list[str], task: list[str],
                   **columns: Any) -> list[float]:  # fmt: skip
            texts = [completion_text(c) for c in completions]
            answers = columns.get("answers")
            values = component_values(name, texts, target, task, answers)
            self._record(name, texts, values, columns)
            return values

        reward.__name__ = name  # TRL names its logs after the function: rewards/<name>/mean
        return reward

    def _record(self, name: str, texts: list[str], values: list[float], columns: dict) -> None:
        self._pending[name] = values
        if name != self.components[-1].name:
            return
        pending, self._pending = self._pending, {}
        state = columns.get("trainer_state")
        if self.log_path is None or (state is not None and not state.is_world_process_zero):
            return
        # A generation serves `steps` steps; TRL shuffles its rows between them, so a row is
        # labelled with the steps its generation trained: `step` (the first) to `last_step`.
        step = state.global_step + 1 if state is not None else None
        span = {"last_step": step + self.steps - 1} if step is not None and self.steps > 1 else {}
        rows = []
        for i, text in enumerate(texts):
            parts = {c.name: pending[c.name][i] for c in self.components}
            total = sum(c.weight * parts[c.name] for c in self.components)
            rows.append({"step": step, **span, "id": columns["id"][i], "completion": text,
                         "rewards": parts, "reward": total})  # fmt: skip
        with open(self.log_path, "a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
