"""The SPACE file of `vlmkit sweep`: what every trial shares, what varies, and how it is judged.

```toml
model = "google/paligemma2-3b-pt-224"
train = "data/cord/train"
eval = "data/cord/validation"
metric = "field_f1"            # what a trial is judged by (at its best evaluation)
trials = 16                    # budget; or timeout = "2h"
sampler = "tpe"                # grid, random or tpe

[settings]                     # any key `vlmkit finetune --config` accepts
method = "qlora"
eval_every = 50

[search]                       # per setting: a list, a range, or a choice
lr = { low = 1e-5, high = 1e-3, log = true }
lora_r = [8, 16, 32]
target_modules = { choice = ["q_proj,v_proj", "q_proj,k_proj,v_proj,o_proj"] }
```

Every value is checked here, against the same rules `vlmkit finetune` applies, before a
study exists: a range whose ends `finetune` would refuse fails now, naming the SPACE key.
Stdlib only: Optuna is imported where a trial draws its values (`suggest`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vlmkit.config_files import read_table, unknown_key
from vlmkit.errors import InputError, UsageError, VlmkitError
from vlmkit.finetune.settings import (
    SETTING_ALIASES,
    SETTING_FIELDS,
    FinetuneSettings,
    coerce_setting,
)

SAMPLERS = ("grid", "random", "tpe")
PRUNERS = ("median", "none")
DIRECTIONS = ("maximize", "minimize")

NOT_SEARCHED = {
    "best_metric": "a trial keeps its best adapter by the sweep's metric",
    "device": "--devices gives each worker its device",
    "objective": "the training data's kind decides it: sweep each objective on its own data",
}
"""Settings a sweep sets itself, and why."""

TOP_LEVEL = ("model", "train", "split", "eval", "eval_split", "metric", "direction", "trials",
             "timeout", "sampler", "sampler_seed", "pruner", "pruner_startup_trials",
             "pruner_warmup_steps", "settings", "search")  # fmt: skip


@dataclass(frozen=True)
class Choice:
    """Values to try as they are (a list, or `{choice = [...]}`); a grid tries each."""

    name: str
    values: tuple[Any, ...]

    def describe(self) -> dict[str, Any]:
        return {"choice": list(self.values)}

    def grid(self) -> list[Any]:
        return list(self.values)


@dataclass(frozen=True)
class Range:
    """`{low, high}`, with `log = true` for a log scale and `step` for a grid."""

    name: str
    low: float
    high: float
    integer: bool
    log: bool = False
    step: float | None = None

    def describe(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "log": self.log, "step": self.step}

    def points(self) -> int:
        """How many values a grid takes (the range with its step)."""
        assert self.step is not None
        return math.floor((self.high - self.low) / self.step + 1e-9) + 1

    def grid(self) -> list[Any]:
        if self.step is None:
            raise UsageError(
                f"search.{self.name}: a grid needs the values to try, and this range has none",
                hint=f"give a step ({{low = {self.low}, high = {self.high}, step = ...}}), "
                'a list of values, or sampler = "random" or "tpe"',
            )
        if self.points() > MAX_GRID:
            raise UsageError(
                f"search.{self.name}: the range {self.low}..{self.high} in steps of "
                f"{self.step} has {self.points():,} values: a grid would never finish",
                hint='a larger step, a list of values, or sampler = "tpe" with trials = N',
            )
        values = [self.low + i * self.step for i in range(self.points())]
        return [round(v) for v in values] if self.integer else [round(v, 12) for v in values]


Param = Choice | Range

MAX_GRID = 10_000
"""Most points a grid sweep may have: more is a typo (a step too small), not a plan."""


@dataclass(frozen=True)
class SweepSpace:
    """A SPACE file with its flags applied: everything a study and its trials need."""

    file: Path
    model: str
    train: Path
    eval: Path
    metric: str
    direction: str
    settings: dict[str, Any]
    """The base settings every trial shares (coerced as `finetune --config` would)."""
    search: dict[str, Param]
    split: str | None = None
    eval_split: str | None = None
    trials: int | None = None
    timeout: float | None = None
    """Seconds after which a worker starts no new trial (Optuna's `timeout`)."""
    sampler: str = "tpe"
    sampler_seed: int | None = None
    pruner: str = "median"
    pruner_startup_trials: int = 2
    pruner_warmup_steps: int = 0
    notices: list[str] = field(default_factory=list, compare=False)

    def trial_settings(self, params: dict[str, Any], **fixed: Any) -> FinetuneSettings:
        """The settings of one trial: the base, the trial's values, then `fixed`."""
        values = {**self.settings, **params, **fixed}
        where = f"{self.file}"
        return FinetuneSettings(
            **{name: coerce_setting(name, value, where) for name, value in values.items()}
        )

    def grid_space(self) -> dict[str, list[Any]]:
        return {name: param.grid() for name, param in self.search.items()}

    def grid_points(self) -> int:
        return math.prod(len(values) for values in self.grid_space().values())

    def budget(self) -> int | None:
        """How many trials the study runs in all (finished ones count, wherever they ran)."""
        if self.sampler != "grid":
            return self.trials
        points = self.grid_points()
        return min(points, self.trials) if self.trials else points

    def identity(self) -> dict[str, Any]:
        """What makes two sweeps the same study: data, model, base settings, space, metric
        (not the budget, sampler or pruner, which a user may change between runs)."""
        local = Path(self.model)
        identity = {
            "model": str(local.resolve()) if local.exists() else self.model,
            "train": str(self.train.resolve()), "split": self.split,
            "eval": str(self.eval.resolve()), "eval_split": self.eval_split,
            "settings": self.settings,
            "search": {name: param.describe() for name, param in sorted(self.search.items())},
            "metric": self.metric, "direction": self.direction,
        }  # fmt: skip
        # As it reads back from JSON (tuples as lists): what a study records and compares.
        return json.loads(json.dumps(identity, default=str))

    def fingerprint(self) -> str:
        text = json.dumps(self.identity(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def suggest(self, trial: Any) -> dict[str, Any]:
        """The trial's values, drawn through Optuna's `suggest_*` (the sampler decides)."""
        values: dict[str, Any] = {}
        for name, param in self.search.items():
            if isinstance(param, Choice):
                values[name] = trial.suggest_categorical(name, list(param.values))
            elif param.integer:
                low, high, step = int(param.low), int(param.high), int(param.step or 1)
                values[name] = trial.suggest_int(name, low, high, step=step, log=param.log)
            else:
                low, high, step = param.low, param.high, param.step
                values[name] = trial.suggest_float(name, low, high, step=step, log=param.log)
        return values


def read_space(path: Path, overrides: dict[str, Any]) -> SweepSpace:
    """SPACE with the flags that were given (`overrides`, not None) applied, every value
    checked."""
    label = f"SPACE {path}"
    data = read_table(path, label)
    top = {str(key).replace("-", "_"): value for key, value in data.items()}
    for key in top:
        if key not in TOP_LEVEL:
            if key in SETTING_FIELDS:
                raise InputError(
                    f"{label}: {key!r} is a fine-tuning setting",
                    hint="put it under [settings] (shared) or [search] (varied)",
                )
            raise unknown_key(label, key, TOP_LEVEL, what="key", joiner="_")
    flags = {key: value for key, value in overrides.items() if value is not None}
    top.update(flags)
    keys = _Keys(top, label, frozenset(flags))
    settings = _base_settings(label, _table(label, top, "settings"))
    search = {
        name: _param(label, name, spec)
        for name, spec in _named_settings(label, _table(label, top, "search"), "search").items()
    }
    if not search:
        raise InputError(
            f"{label}: [search] names no setting to vary",
            hint="e.g. [search] lr = [1e-4, 2e-4] (a list), or lr = {low = 1e-5, high = 1e-3, "
            "log = true} (a range)",
        )
    for name in search:
        if name in settings:
            raise InputError(
                f"{label}: {name} is both in [settings] and in [search]",
                hint="keep it in one: [search] to vary it, [settings] to fix it",
            )
    space = SweepSpace(
        file=path,
        model=_text(keys, "model", required=True),
        train=Path(_text(keys, "train", required=True)),
        eval=Path(_eval_dataset(keys)),
        split=_text(keys, "split"),
        eval_split=_text(keys, "eval_split"),
        metric=_metric(keys),
        direction="",
        settings=settings,
        search=search,
        trials=_whole(keys, "trials", minimum=1),
        timeout=_timeout(keys),
        sampler=_one_of(keys, "sampler", SAMPLERS, "tpe"),
        sampler_seed=_whole(keys, "sampler_seed", minimum=0),
        pruner=_one_of(keys, "pruner", PRUNERS, "median"),
        pruner_startup_trials=_whole(keys, "pruner_startup_trials", minimum=0, default=2),
        pruner_warmup_steps=_whole(keys, "pruner_warmup_steps", minimum=0, default=0),
    )
    space = replace(space, direction=_direction(keys, space.metric))
    _check_values(label, space)
    if space.sampler == "grid":
        try:
            points = space.grid_points()  # every range has its values, not too many
        except UsageError as error:
            raise UsageError(f"{label}: {error.message}", hint=error.hint) from None
        if points > MAX_GRID:
            raise UsageError(
                f"{label}: the grid has {points:,} points: it would never finish",
                hint='fewer values, or sampler = "tpe" with trials = N',
            )
        if space.sampler_seed is not None:
            space.notices.append(
                "sampler_seed does not apply to a grid: its order is fixed, so that every "
                "worker and every later run agree on which point is which"
            )
        if space.trials is not None and space.trials > points:
            space.notices.append(
                f"the grid has {points} points: trials = {space.trials} runs {points}"
            )
    elif space.trials is None and space.timeout is None:
        raise UsageError(
            f"{label}: a {space.sampler} sweep needs a budget",
            hint='set trials = N (or --trials N), or timeout = "2h" (or --timeout)',
        )
    if space.pruner == "median" and space.settings.get("eval_every") is None:
        space.notices.append(
            "the median pruner compares evaluations during training, and eval_every is not set "
            "(each trial is evaluated at its end only): no trial will be stopped early"
        )
    return space


def _table(label: str, top: dict[str, Any], key: str) -> dict[str, Any]:
    value = top.get(key, {})
    if not isinstance(value, dict):
        raise InputError(f"{label}: {key} must be a table ([{key}]), got {type(value).__name__}")
    return value


def _named_settings(label: str, table: dict[str, Any], section: str) -> dict[str, Any]:
    named: dict[str, Any] = {}
    for key, value in table.items():
        name = str(key).replace("-", "_")
        if name not in SETTING_FIELDS:
            raise unknown_key(
                f"{label}: [{section}]", key, SETTING_FIELDS, aliases=SETTING_ALIASES, joiner="_"
            )
        if name in NOT_SEARCHED and (section == "search" or name == "best_metric"):
            fix = ", and set metric = ..." if name == "best_metric" else ""
            raise InputError(
                f"{label}: [{section}] {key}: a sweep sets it ({NOT_SEARCHED[name]})",
                hint="leave it out" + fix,
            )
        named[name] = value
    return named


def _base_settings(label: str, table: dict[str, Any]) -> dict[str, Any]:
    named = _named_settings(label, table, "settings")
    return {
        name: coerce_setting(name, value, f"{label} [settings]") for name, value in named.items()
    }


def _kind(name: str) -> str:
    kind = str(SETTING_FIELDS[name].type)
    return "int" if kind.startswith("int") else "float" if kind.startswith("float") else "other"


def _param(label: str, name: str, spec: Any) -> Param:
    where = f"{label}: search.{name}"
    if isinstance(spec, list) or (isinstance(spec, dict) and set(spec) == {"choice"}):
        values = spec if isinstance(spec, list) else spec["choice"]
        if not isinstance(values, list) or not values:
            raise InputError(f"{where} lists no values", hint="give at least one value to try")
        checked = [_choice_value(where, name, value) for value in values]
        if len(set(map(repr, checked))) < len(checked):
            raise InputError(f"{where} lists a value twice", hint="name each value once")
        return Choice(name, tuple(checked))
    if not isinstance(spec, dict):
        raise InputError(
            f"{where} = {spec!r}: expected a list of values or a range",
            hint=f"e.g. {name} = [a, b], or {name} = {{low = ..., high = ...}}",
        )
    unknown = set(spec) - {"low", "high", "log", "step"}
    if unknown:
        raise InputError(
            f"{where}: unknown key {sorted(unknown)[0]!r} in a range",
            hint="a range has low, high, and optionally log = true or step",
        )
    kind = _kind(name)
    if kind == "other":
        raise InputError(
            f"{where}: {name} is not a number, so it has no range",
            hint=f"list its values: {name} = [...]",
        )
    if "low" not in spec or "high" not in spec:
        raise InputError(
            f"{where}: a range needs low and high", hint="e.g. {low = 1e-5, high = 1e-3}"
        )
    low, high = (_number(where, key, spec[key], kind) for key in ("low", "high"))
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise InputError(f"{where}: log = {log!r} is not true or false")
    step = _number(where, "step", spec["step"], kind) if "step" in spec else None
    if low > high:
        raise InputError(f"{where}: low {low} is above high {high}", hint="swap them")
    if low == high:
        raise InputError(
            f"{where}: the range {low}..{high} is empty (low = high)",
            hint=f"to fix {name}, put it under [settings]",
        )
    if log and low <= 0:
        raise InputError(
            f"{where}: a log scale needs a range above 0, got low = {low}",
            hint="raise low, or drop log = true",
        )
    if step is not None:
        if step <= 0:
            raise InputError(f"{where}: step must be above 0, got {step}")
        steps = (high - low) / step
        if abs(steps - round(steps)) > 1e-6:
            raise InputError(
                f"{where}: the range {low}..{high} is not a whole number of steps of {step}",
                hint=f"a step that divides {high - low:g}, or high = "
                f"{low + math.floor(steps) * step:g}",
            )
        if log:
            raise InputError(
                f"{where}: a range has either a step or a log scale, not both",
                hint="list the values instead, e.g. [1e-5, 1e-4, 1e-3]",
            )
    return Range(name, low, high, integer=kind == "int", log=log, step=step)


def _number(where: str, key: str, value: Any, kind: str) -> float:
    if isinstance(value, str):  # YAML reads 1e-4 as text
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{where}: {key} = {value!r} is not a number")
    if kind == "int":
        if value != int(value):
            raise InputError(f"{where}: {key} = {value} is not a whole number")
        return int(value)
    return float(value)


def _choice_value(where: str, name: str, value: Any) -> Any:
    """A value Optuna can store (None, bool, int, float, str): lists of names become `a,b`."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = ",".join(value)
    try:
        coerced = coerce_setting(name, value, where)
    except VlmkitError as error:
        raise InputError(str(error), hint=error.hint) from None
    if not isinstance(coerced, tuple):  # numbers as numbers (YAML reads 1e-4 as text)
        value = coerced
    if value is not None and not isinstance(value, (bool, int, float, str)):
        raise InputError(f"{where}: {value!r} is not a value a study can store")
    return value


def _check_values(label: str, space: SweepSpace) -> None:
    """Each value the search can take, at its extremes, with the base settings: what
    `finetune` would refuse fails now."""
    try:
        space.trial_settings({})
    except VlmkitError as error:
        raise UsageError(f"{label} [settings]: {error}", hint=error.hint) from None
    for name, param in space.search.items():
        ends = param.values if isinstance(param, Choice) else (param.low, param.high)
        for value in ends:
            try:
                space.trial_settings({name: value})
            except VlmkitError as error:
                raise UsageError(f"{label}: search.{name} = {value!r}: {error}",
                                 hint=error.hint) from None  # fmt: skip


@dataclass(frozen=True)
class _Keys:
    """SPACE's top-level keys, with the flags applied: each error names where its value
    came from (`--timeout`, or `SPACE x.toml: timeout`)."""

    values: dict[str, Any]
    label: str
    flags: frozenset[str]

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def where(self, key: str) -> str:
        return f"--{key.replace('_', '-')}" if key in self.flags else f"{self.label}: {key}"


def _text(keys: _Keys, key: str, *, required: bool = False) -> Any:
    value = keys.get(key)
    if value is None:
        if required:
            raise UsageError(
                f"{keys.label} names no {key}", hint=f'add {key} = "..." or pass --{key}'
            )
        return None
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise InputError(f"{keys.where(key)} {value!r} is not a name or path")
    return value


def _eval_dataset(keys: _Keys) -> str:
    if keys.get("eval") is None:
        raise UsageError(
            f"{keys.label} names no eval dataset: trials are judged by generation on it",
            hint='add eval = "data/..." (and eval_split), or pass --eval',
        )
    return _text(keys, "eval")


def _metric(keys: _Keys) -> str:
    from vlmkit.metrics import resolve_metric_names

    value = keys.get("metric")
    if value is None:
        raise UsageError(
            f"{keys.label} names no metric to judge trials by",
            hint='add metric = "exact_match" (or cer, field_f1, ...), or pass --metric',
        )
    if not isinstance(value, str):
        raise InputError(f"{keys.where('metric')} {value!r} is not a metric's name")
    names = resolve_metric_names(value, flag=keys.where("metric"))
    if len(names) != 1:
        raise UsageError(
            f"{keys.where('metric')} names {len(names)} metrics", hint="a sweep optimises one"
        )
    return names[0]


def _direction(keys: _Keys, metric: str) -> str:
    from vlmkit.metrics import metric_class

    own = "maximize" if metric_class(metric).higher_is_better else "minimize"
    value = keys.get("direction") or own
    if value not in DIRECTIONS:
        raise UsageError(f"{keys.where('direction')} {value!r} is not maximize or minimize")
    return value


def _one_of(keys: _Keys, key: str, choices: tuple[str, ...], default: str) -> str:
    value = keys.get(key, default)
    if value not in choices:
        raise UsageError(
            f"{keys.where(key)} {value!r} is not one of {', '.join(choices)}",
            hint=f"choose from: {', '.join(choices)}",
        )
    return value


def _whole(keys: _Keys, key: str, *, minimum: int, default: int | None = None) -> int | None:
    value = keys.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UsageError(f"{keys.where(key)} {value!r} must be a whole number, at least {minimum}")
    return value


UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _timeout(keys: _Keys) -> float | None:
    """Seconds, from a number of seconds or `90s`, `30m`, `2h`, `1.5d`."""
    value = keys.get("timeout")
    if value is None:
        return None
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smhd]?)\s*", value)
        if match:
            seconds = float(match.group(1)) * UNITS[match.group(2) or "s"]
    if seconds is not None and seconds <= 0:
        raise UsageError(f"{keys.where('timeout')} {value!r} must be above 0")
    if seconds is None or not math.isfinite(seconds):
        raise UsageError(
            f"{keys.where('timeout')} {value!r} is not a duration",
            hint="seconds, or a number with s, m, h or d: e.g. 90m",
        )
    return seconds
