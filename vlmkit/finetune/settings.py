"""Fine-tuning settings: one frozen dataclass, from flags and an optional TOML/YAML file.

A flag given on the command line wins over the file, which wins over the defaults; every value
is validated here, naming its flag, before any model is loaded.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from vlmkit.config_files import read_table, unknown_key
from vlmkit.errors import UsageError
from vlmkit.models.options import check_device_and_dtype

METHODS = ("lora", "qlora")


@dataclass(frozen=True)
class FinetuneSettings:
    """Hyper-parameters and run options of `vlmkit finetune` (each documented by its flag)."""

    objective: str = "sft"
    """What the adapter learns from: `sft` (targets), `dpo` (preference pairs) (`--objective`)."""
    method: str = "lora"
    """`lora`: adapters on full-precision weights; `qlora`: on 4-bit NF4 weights (`--method`)."""
    lora_r: int = 16
    """Rank of the LoRA matrices (`--lora-r`)."""
    lora_alpha: int = 32
    """LoRA scaling numerator: updates are scaled by alpha / r (`--lora-alpha`)."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA path (`--lora-dropout`)."""
    target_modules: tuple[str, ...] | None = None
    """Module names to adapt; None: the language model's linear layers (`--target-modules`)."""
    train_vision: bool = False
    """Also adapt the vision tower's linear layers (`--train-vision`)."""
    epochs: float = 3.0
    """Passes over the training set (`--epochs`), unless `max_steps` is set."""
    max_steps: int | None = None
    """Optimizer steps to run, overriding epochs (`--max-steps`)."""
    lr: float = 2e-4
    """Peak learning rate (`--lr`)."""
    batch_size: int = 4
    """Samples per device per step (`--batch-size`)."""
    grad_accum: int = 1
    """Steps whose gradients are summed before an update (`--grad-accum`)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, ~30% slower."""
    warmup_ratio: float = 0.0
    """Share of the steps with a rising learning rate (`--warmup-ratio`)."""
    max_length: int | None = None
    """Most tokens per sample, image tokens included; None: the model's context (`--max-length`)."""
    skip_long: bool = False
    """Skip samples longer than max_length (counted) instead of stopping (`--skip-long`)."""
    seed: int = 0
    """Seed of initialisation, shuffling and dropout (`--seed`)."""
    dtype: str = "auto"
    """Compute dtype: auto (bf16 on CUDA, fp32 on CPU), float32, bfloat16, float16 (`--dtype`)."""
    device: str = "auto"
    """auto, cpu or cuda (`--device`)."""
    eval_every: int | None = None
    """Steps between generation evaluations on --eval (`--eval-every`); None: at the end only."""
    eval_samples: int = 32
    """Eval samples generated per evaluation (`--eval-samples`)."""
    eval_max_new_tokens: int = 256
    """Tokens generated per eval answer (`--eval-max-new-tokens`)."""
    best_metric: str | None = None
    """Keep the adapter that scored best on this metric (`--best-metric`, e.g. cer, field_f1)."""
    save_every: int | None = None
    """Steps between checkpoints that --resume continues from (`--save-every`); None: per epoch."""
    logging_steps: int = 5
    """Steps between loss lines (`--logging-steps`)."""
    report_to: tuple[str, ...] = ()
    """Trackers the trainer reports to: tensorboard, wandb... (`--report-to`)."""
    trust_remote_code: bool = False
    """Run code shipped with the model (`--trust-remote-code`)."""
    init_adapter: str | None = None
    """Start from this adapter's weights (its LoRA shape) instead of a new one: SFT then DPO
    (`--init-adapter`)."""
    beta: float | None = None
    """dpo, grpo: how far the trained model may move from the reference (`--beta`); None: the
    objective's default (dpo 0.1; grpo 0.0, TRL's: no reference model, no KL term)."""
    dpo_loss: str = "sigmoid"
    """dpo: TRL's loss type; `sigmoid` is the DPO paper's (`--dpo-loss`)."""
    max_image_tokens: int | None = None
    """Most tokens one image may take (`--max-image-tokens`); None: the processor's."""
    image_max_pixels: int | None = None
    """Qwen: the largest image, in pixels (`--image-max-pixels`)."""
    image_min_pixels: int | None = None
    """Qwen: the smallest image, in pixels (`--image-min-pixels`)."""
    image_longest_edge: int | None = None
    """Idefics3: the longest edge images are resized to (`--image-longest-edge`)."""
    image_splitting: bool | None = None
    """Idefics3: split large images into tiles (`--image-splitting/--no-image-splitting`)."""
    max_image_tiles: int | None = None
    """Mllama: the most tiles an image is cut into (`--max-image-tiles`)."""
    reward: str | None = None
    """grpo: the metrics that reward each answer, `field_f1` or `field_f1=1,format=0.2`
    (`--reward`)."""
    num_generations: int = 8
    """grpo: answers sampled per prompt, the group each is compared with (`--num-generations`)."""
    temperature: float = 1.0
    """grpo: sampling temperature of those answers (`--temperature`)."""
    max_completion_length: int = 256
    """grpo: most tokens per sampled answer (`--max-completion-length`)."""

    def _check_init_adapter(self) -> None:
        if self.init_adapter is None:
            return
        shape = {"--lora-r": ("lora_r", 16), "--lora-alpha": ("lora_alpha", 32),
                 "--lora-dropout": ("lora_dropout", 0.05),
                 "--target-modules": ("target_modules", None),
                 "--train-vision": ("train_vision", False)}  # fmt: skip
        given = [flag for flag, (name, default) in shape.items() if getattr(self, name) != default]
        if given:
            raise UsageError(
                f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply with "
                "--init-adapter: training continues that "
                "adapter, whose shape (rank, alpha, dropout, layers) it keeps",
                hint="leave them out, or start a new adapter without --init-adapter",
            )

    def _check_preference_settings(self) -> None:
        from vlmkit.finetune.objectives.dpo import LOSS_TYPES

        if self.objective != "dpo" and self.dpo_loss != "sigmoid":
            raise UsageError(
                "--dpo-loss applies to --objective dpo", hint="add --objective dpo, or drop it"
            )
        if self.objective not in ("dpo", "grpo") and self.beta is not None:
            raise UsageError(
                "--beta applies to --objective dpo and grpo",
                hint="add --objective dpo or grpo, or leave it out",
            )
        if self.objective == "dpo" and not (self.dpo_beta > 0 and math.isfinite(self.dpo_beta)):
            raise UsageError(f"--beta must be above 0, got {self.beta}", hint="e.g. --beta 0.1")
        if self.objective == "grpo" and not (self.grpo_beta >= 0 and math.isfinite(self.grpo_beta)):
            raise UsageError(
                f"--beta must be 0 or above, got {self.beta}",
                hint="0 (the default) trains without a reference model; e.g. 0.04 adds a KL term",
            )
        parts = [name.strip() for name in self.dpo_loss.split(",")]
        if "" in parts or len(set(parts)) < len(parts):
            raise UsageError(
                f"--dpo-loss {self.dpo_loss!r}: name each loss once, separated by commas",
                hint="e.g. --dpo-loss sigmoid or --dpo-loss sigmoid,sft",
            )
        unknown = [name for name in self.dpo_losses if name not in LOSS_TYPES]
        if unknown:
            raise UsageError(
                f"--dpo-loss {self.dpo_loss!r}: {', '.join(unknown)} is not one of TRL's DPO "
                "losses",
                hint=f"choose from: {', '.join(LOSS_TYPES)} (several: summed, e.g. sigmoid,sft)",
            )

    @property
    def image(self) -> Any:
        """The image settings (`vlmkit.models.resolution.ImageSettings`), checked."""
        from vlmkit.models.resolution import FLAGS, ImageSettings

        # The fields carry the knobs' own names, so config files and sweeps set them too.
        return ImageSettings(**{name: getattr(self, name) for name in FLAGS})

    @property
    def dpo_beta(self) -> float:
        return 0.1 if self.beta is None else self.beta

    @property
    def grpo_beta(self) -> float:
        return 0.0 if self.beta is None else self.beta

    def _check_grpo_settings(self) -> None:
        grpo = {"--reward": self.reward is not None, "--num-generations": self.num_generations != 8,
                "--temperature": self.temperature != 1.0,
                "--max-completion-length": self.max_completion_length != 256}  # fmt: skip
        given = [flag for flag, differs in grpo.items() if differs]
        if self.objective != "grpo" and given:
            raise UsageError(
                f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to --objective "
                "grpo",
                hint=f"add --objective grpo, or leave {'it' if len(given) == 1 else 'them'} out",
            )
        if self.reward is not None:
            from vlmkit.finetune.rewards import parse_reward

            parse_reward(self.reward)
        if self.num_generations < 2:
            raise UsageError(
                f"--num-generations must be at least 2, got {self.num_generations}",
                hint="GRPO compares each answer with the others of its group; 8 is TRL's default",
            )
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise UsageError(
                f"--temperature must be above 0, got {self.temperature}",
                hint="the group's answers must differ: 1.0 (the default) samples as the model is",
            )
        if self.max_completion_length < 1:
            raise UsageError(
                f"--max-completion-length must be at least 1, got {self.max_completion_length}",
                hint="the most tokens each sampled answer may take, e.g. 256 (the default)",
            )

    @property
    def dpo_losses(self) -> list[str]:
        """`--dpo-loss sigmoid,sft`: TRL sums the losses listed (RPO: DPO plus the chosen
        answer's likelihood)."""
        return [name.strip() for name in self.dpo_loss.split(",") if name.strip()]

    def __post_init__(self) -> None:
        from vlmkit.finetune.objectives import objective_named

        objective_named(self.objective)  # a typo gets its did-you-mean
        self._check_preference_settings()
        self._check_grpo_settings()
        self._check_init_adapter()
        _ = self.image  # each value checked, naming its flag
        if self.method not in METHODS:
            raise UsageError(f"--method {self.method!r} is not one of {', '.join(METHODS)}")
        positive = {
            "--lora-r": self.lora_r,
            "--lora-alpha": self.lora_alpha,
            "--batch-size": self.batch_size,
            "--grad-accum": self.grad_accum,
            "--eval-samples": self.eval_samples,
            "--eval-max-new-tokens": self.eval_max_new_tokens,
            "--logging-steps": self.logging_steps,
        }
        for flag, value in positive.items():
            if value < 1:
                raise UsageError(f"{flag} must be at least 1, got {value}")
        optional = {
            "--max-steps": self.max_steps,
            "--max-length": self.max_length,
            "--eval-every": self.eval_every,
            "--save-every": self.save_every,
        }
        for flag, value in optional.items():
            if value is not None and value < 1:
                raise UsageError(f"{flag} must be at least 1, got {value}")
        if not 0 <= self.lora_dropout < 1:
            raise UsageError(f"--lora-dropout must be in [0, 1), got {self.lora_dropout}")
        if self.epochs <= 0 and self.max_steps is None:
            raise UsageError(f"--epochs must be above 0, got {self.epochs}")
        if not 0 < self.lr < 1:
            raise UsageError(
                f"--lr {self.lr} makes no sense", hint="typical LoRA rates: 1e-5 to 1e-3"
            )
        if not 0 <= self.warmup_ratio < 1:
            raise UsageError(f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.target_modules is not None and not self.target_modules:
            raise UsageError("--target-modules is empty", hint="drop it for the default")
        check_device_and_dtype(self.device, self.dtype)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("target_modules", "report_to"):
            data[key] = list(data[key]) if data[key] is not None else None
        return data


SETTING_FIELDS = {f.name: f for f in fields(FinetuneSettings)}
_FIELDS = SETTING_FIELDS
_TUPLES = ("target_modules", "report_to")


SETTING_ALIASES = {
    "learning_rate": "lr", "num_train_epochs": "epochs", "per_device_train_batch_size":
    "batch_size", "gradient_accumulation_steps": "grad_accum", "r": "lora_r",
    "lora_rank": "lora_r", "warmup": "warmup_ratio", "eval_steps": "eval_every",
    "save_steps": "save_every", "max_seq_length": "max_length",
}  # fmt: skip
"""Names the same settings have in transformers and TRL, for the did-you-mean."""

SETTING_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(FinetuneSettings)}
"""Each setting's default, as `--help` shows it."""


def settings_from(config_file: Path | None, flags: dict[str, Any]) -> FinetuneSettings:
    """Defaults, then the file's values, then the flags that were given (not None)."""
    values = read_config_file(config_file) if config_file is not None else {}
    values.update({name: value for name, value in flags.items() if value is not None})
    where = f"--config {config_file}" if config_file is not None else "a flag"
    return FinetuneSettings(
        **{name: coerce_setting(name, value, where) for name, value in values.items()}
    )


def coerce_setting(name: str, value: Any, where: str) -> Any:
    """`value` as the type of setting `name`, or a usage error naming the key.

    Files are loosely typed (PyYAML reads `2e-4` as a string; `"no"` is a true string), so
    every value is checked here rather than trusted.
    """
    kind = _FIELDS[name].type
    key = name.replace("_", "-")
    problem = f"{where}: {key} = {value!r} is not "
    if value is None and "None" in kind:
        return None
    if name in _TUPLES:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise UsageError(problem + "a list of names", hint='e.g. ["q_proj", "v_proj"]')
        return tuple(value)
    if kind.startswith("bool"):
        if not isinstance(value, bool):
            raise UsageError(problem + "true or false")
        return value
    if kind.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(problem + "a whole number")
        return value
    if kind.startswith("float"):
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(problem + "a number")
        return float(value)
    if not isinstance(value, str):
        raise UsageError(problem + "text")
    return value


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings in a TOML or YAML file; keys are the flags' names (`lora-r` or `lora_r`)."""
    label = f"--config {path}"
    settings: dict[str, Any] = {}
    for key, value in read_table(path, label).items():
        name = str(key).replace("-", "_")
        if name not in _FIELDS:
            raise unknown_key(label, key, _FIELDS, aliases=SETTING_ALIASES)
        settings[name] = value
    return settings


# Trackers transformers reports to, and the module each needs.
TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow",
            "comet_ml": "comet_ml", "clearml": "clearml", "trackio": "trackio"}  # fmt: skip


def check_report_to(names: tuple[str, ...]) -> None:
    """Fail before training on a tracker that is unknown or not installed."""
    import importlib.util

    for name in names:
        if name == "none":
            continue
        if name not in TRACKERS:
            raise UsageError(
                f"--report-to {name!r} is not a tracker vlmkit knows",
                hint=f"choose from: {', '.join(TRACKERS)}",
            )
        if importlib.util.find_spec(TRACKERS[name]) is None:
            raise UsageError(
                f"--report-to {name}: {TRACKERS[name]} is not installed",
                hint=f"pip install {TRACKERS[name]}",
            )
