"""`grpo`: Group Relative Policy Optimisation with TRL's GRPOTrainer, rewarded by vlmkit's metrics.

For each prompt the model samples `--num-generations` answers; each is rewarded by vlmkit's own
metric code against the record's target (`vlmkit.finetune.rewards`), and the policy moves
towards the answers that scored above their group's mean. The prompt is the conversation
`vlmkit infer` formats (one user turn, the image first, then the record's prompt); TRL applies
the processor's chat template to it, which gives the same tokens (checked by a test per
family). Generation uses vLLM in colocate mode where vLLM is installed and the run is on a GPU,
else transformers' `generate`.

Families: those TRL's GRPOTrainer trains with images (Idefics3/SmolVLM, Qwen2-VL, Qwen2.5-VL,
Gemma 3, LLaVA). PaliGemma and Llama 3.2 Vision are refused before any weight loads: TRL builds
their inputs wrong. PaliGemma has no chat template; given one, TRL trains, but it extends
`token_type_ids` with zeros over the completion, which PaliGemma reads as its bidirectional
prefix, so every completion token is scored seeing the tokens after it (a test shows it).
Mllama's cross-attention mask and aspect-ratio inputs are not carried through generation.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

from vlmkit.errors import InputError, UsageError
from vlmkit.finetune.data import TrainingData
from vlmkit.finetune.objectives.base import Objective
from vlmkit.finetune.output import COMPLETIONS
from vlmkit.finetune.rewards import (
    RewardFunctions,
    check_targets,
    check_task,
    parse_reward,
    reward_sum,
)
from vlmkit.prompts import user_turn

_PALIGEMMA = (
    "it has no chat template for TRL to format prompts with, and with one TRL marks the "
    "completion as prefix (token_type_ids 0), so each completion token would be scored seeing "
    "the tokens after it"
)
UNSUPPORTED = {
    "paligemma": _PALIGEMMA,
    "paligemma2": _PALIGEMMA,
    "mllama": "TRL's GRPOTrainer does not carry Llama 3.2 Vision's cross-attention mask and "
    "aspect-ratio inputs through generation",
}
"""Families GRPO refuses, and why (measured with TRL 1.16)."""


class GroupRelativePolicyOptimisation(Objective):
    name: ClassVar[str] = "grpo"
    record_fields: ClassVar[tuple[str, ...]] = ("target",)
    unit: ClassVar[str] = "prompt"
    head_outputs: ClassVar[tuple[str, ...]] = ("log_probs", "entropy")
    answer_part: ClassVar[str] = "completion (at most)"
    outside_the_step: ClassVar[str | None] = (
        "answers are sampled (--num-generations per prompt) between steps, with their own KV "
        "cache: not in the estimate (vlmkit infer --dry-run estimates the transformers "
        "generation; with vLLM installed on a GPU, vLLM generates in this process and takes "
        "the share of the GPU TRL gives it, 30 % by default)"
    )
    budget_hint: ClassVar[str] = (
        "each sample's budget is its prompt with image tokens plus --max-completion-length: "
        "lower --max-completion-length, raise --max-length (up to the model's context), or "
        "pass --skip-long to leave the long ones out (counted)"
    )

    def check_data(self, data: TrainingData, flag: str) -> None:
        for number, record in enumerate(data.records, start=1):
            if record.target is None or not record.target.strip():
                what = "a preference pair" if record.target is None else "an empty target"
                raise InputError(
                    f"{data.metadata}:{number}: {record.id!r} has {what}: --objective grpo "
                    "rewards answers against each record's target",
                    hint="train preference pairs with --objective dpo"
                    if record.target is None
                    else f"give every record of {flag} a target, or drop that record",
                )

    def check_settings(self, settings: Any, data: TrainingData) -> None:
        if settings.reward is None:
            raise UsageError(
                "--objective grpo needs --reward: the metric that rewards each answer",
                hint="e.g. --reward field_f1, or --reward letter_accuracy,format=0.2 "
                "(vlmkit metrics lists the rewards)",
            )
        components = parse_reward(settings.reward)
        check_task(components, {record.task for record in data.records})
        check_targets(components, data)
        # On one process: a launch on several needs fewer steps per generation, of which
        # these are a multiple.
        steps = generation_steps(settings, 1)
        if settings.save_every and settings.save_every % steps:
            answers = generation_batches(settings, 1) * settings.batch_size
            raise UsageError(
                f"--save-every {settings.save_every}: one generation of {answers} answers "
                f"(groups of {settings.num_generations}) serves {steps} optimizer steps "
                f"(--batch-size {settings.batch_size}, --grad-accum {settings.grad_accum}), and a "
                "checkpoint inside one would resume from answers it never saved",
                hint=f"save every multiple of {steps} steps (e.g. --save-every {steps * 10})",
            )

    def check_family(self, family: Any, flag: str) -> None:
        if family.name in UNSUPPORTED:
            raise UsageError(
                f"{flag}: --objective grpo cannot train {family.title}: {UNSUPPORTED[family.name]}",
                hint="use sft or dpo for this family, or GRPO with Idefics3/SmolVLM, Qwen2-VL, "
                "Qwen2.5-VL, Gemma 3 or LLaVA",
            )

    def manifest_fields(self, settings: Any) -> dict[str, Any]:
        components = parse_reward(settings.reward)
        return {"reward": {
            "components": [c.to_json() for c in components],
            "sum": reward_sum(components),
            "num_generations": settings.num_generations, "temperature": settings.temperature,
            "max_completion_length": settings.max_completion_length, "beta": settings.grpo_beta,
        }}  # fmt: skip

    def collator(self, processor: Any, family: Any, max_length: int | None) -> Any:
        # Not the trainer's (it formats and generates itself): measures prompts for the budget.
        from vlmkit.finetune.collate import TrainingCollator

        return TrainingCollator(processor, family, max_length=max_length)

    def examples(self, data: TrainingData) -> list[dict[str, Any]]:
        with_answers = any(r.answers is not None for r in data.records)
        return [
            {"id": r.id, "image": str(data.folder / r.file_name), "text": r.prompt,
             "prompt": user_turn(r.prompt), "target": r.target, "task": r.task,
             **({"answers": list(r.answers) if r.answers else None} if with_answers else {})}
            for r in data.records
        ]  # fmt: skip

    def dataset(self, examples: list[dict[str, Any]]) -> Any:
        from datasets import Dataset, Image

        # The trainer hands its rows to the processor as they are: images decoded, RGB as
        # inference opens them.
        return Dataset.from_list(examples).cast_column("image", Image(mode="RGB"))

    def rows(self, settings: Any, samples: int) -> int:
        # A batch holds --batch-size completions, each prompt repeated --num-generations times.
        return int(settings.batch_size)

    def measure(self, collator: Any, example: dict[str, Any], settings: Any) -> Any:
        from vlmkit.finetune.collate import EncodedLengths

        # The prompt with its image tokens, and the longest completion it may be given.
        prompt = collator.lengths({**example, "prompt": example["text"]})
        answer = settings.max_completion_length
        return EncodedLengths(prompt.prompt + answer, prompt.prompt, answer, prompt.image)

    def trainer(
        self, *, model: Any, processor: Any, args: dict[str, Any], dataset: Any, collator: Any,
        peft_config: Any, callbacks: list[Any], settings: Any, work: Path, world_size: int,
    ) -> Any:  # fmt: skip
        from trl import GRPOConfig

        steps = generation_steps(settings, world_size)
        rewards = RewardFunctions(parse_reward(settings.reward), work / COMPLETIONS, steps)
        batches = generation_batches(settings, world_size)
        config = GRPOConfig(
            **args,
            num_generations=settings.num_generations,
            generation_batch_size=batches * settings.batch_size * world_size,
            temperature=settings.temperature,
            max_completion_length=settings.max_completion_length,
            beta=settings.grpo_beta,
            reward_weights=rewards.weights,
            use_vllm=use_vllm(args),
            vllm_mode="colocate",
        )
        return _trainer_class()(
            model=model, reward_funcs=rewards.functions(), args=config, train_dataset=dataset,
            processing_class=processor, peft_config=peft_config, callbacks=callbacks,
        )  # fmt: skip


def generation_batches(settings: Any, world_size: int) -> int:
    """Batches of --batch-size (on every process) one generation fills: the fewest that hold
    whole groups of --num-generations and whole optimizer steps (--grad-accum batches each).
    TRL calls them its steps per generation."""
    per_batch = settings.batch_size * world_size
    return math.lcm(per_batch * settings.grad_accum, settings.num_generations) // per_batch


def generation_steps(settings: Any, world_size: int) -> int:
    """Optimizer steps one generation serves."""
    return generation_batches(settings, world_size) // settings.grad_accum


def _trainer_class() -> type:
    """TRL's GRPOTrainer with one change: each epoch's prompt order is drawn from the seed and
    the epoch number. TRL's sampler draws every epoch from one generator, which a resumed run
    creates afresh: it replayed the first epoch's order where the run had stopped in a later one.
    """
    from trl import GRPOTrainer
    from trl.trainer.utils import RepeatSampler

    class EpochSeededSampler(RepeatSampler):
        def set_epoch(self, epoch: int) -> None:  # the trainer calls it before each epoch
            if self.shuffle:
                self.generator.manual_seed((self.seed or 0) + epoch)

    class Trainer(GRPOTrainer):
        def _get_train_sampler(self, dataset: Any = None) -> Any:
            base = super()._get_train_sampler(dataset)
            return EpochSeededSampler(base.data_source, base.mini_repeat_count, base.batch_size,
                                      base.repeat_count, base.shuffle, base.seed)  # fmt: skip

    return Trainer


def use_vllm(args: dict[str, Any]) -> bool:
    """vLLM generates where it is installed and the run is on a GPU; transformers elsewhere."""
    import importlib.util

    return not args.get("use_cpu") and importlib.util.find_spec("vllm") is not None
