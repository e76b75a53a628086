"""Where a model comes from: `--model` and `--adapter` checked before anything heavy is imported.

Stdlib only, so a typo in a path is reported in milliseconds rather than after torch has loaded.
The checks read the folders' JSON files (config.json, adapter_config.json, vlmkit's manifest);
a hub id is checked against the network and the cache by `vlmkit.models.hub`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmkit.errors import InputError, UsageError
from vlmkit.models.families import Family, family_of, generic_chat_family

ADAPTER_MANIFEST = "vlmkit-adapter.json"
"""What `vlmkit finetune` writes beside the adapter: base model, family, prompt format, ...
(written last: an adapter folder without it, but with `TRAINING_RECORD`, is unfinished)."""
TRAINING_RECORD = "finetune-run.json"
"""What `vlmkit finetune` writes when training starts: the settings a `--resume` must share."""

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")

# Config fields that must agree between an adapter's base model and the model it is put on.
_SHAPE_FIELDS = ("hidden_size", "num_hidden_layers", "vocab_size", "intermediate_size")


@dataclass(frozen=True)
class ModelSource:
    """The base model and adapter a command will load, as far as can be known without loading."""

    model: str
    """A local folder or a hub id."""
    local: bool
    """`model` is a folder on this machine (else a hub id, read from the cache or the hub)."""
    config: dict[str, Any] | None
    """The folder's config.json (None for a hub id: it is read when the model loads)."""
    adapter: Path | None
    """A LoRA adapter folder to apply on top, or None."""
    manifest: dict[str, Any] | None
    """The adapter's vlmkit manifest, when `vlmkit finetune` made it."""


def resolve_source(
    model: str | None, adapter: Path | None, *, adapter_flag: str = "--adapter"
) -> ModelSource:
    """Check `--model`/`--adapter`; without `--model`, the base model is the adapter's.

    `adapter_flag` names the adapter's flag in errors (finetune's `--init-adapter`)."""
    manifest = adapter_config = None
    if adapter is not None and (adapter / "sweep.json").is_file():
        raise UsageError(
            f"{adapter_flag} {adapter} is a sweep's folder, not an adapter",
            hint=f"pass its best adapter: {adapter_flag} {adapter / 'best'}",
        )
    if adapter is not None:
        unfinished = (adapter / TRAINING_RECORD).is_file()
        if unfinished and not (adapter / ADAPTER_MANIFEST).is_file():
            raise InputError(
                f"{adapter_flag} {adapter}: its training has not finished (no {ADAPTER_MANIFEST}: "
                "the run was stopped, or is still going)",
                hint=f"finish it with the same vlmkit finetune command and --resume, or pass "
                f"{adapter / 'best'} or another finished adapter",
            )
        adapter_config = _read_json(
            adapter / "adapter_config.json",
            flag=adapter_flag,
            what=(
                "is not a LoRA adapter folder (no adapter_config.json)",
                "pass the folder `vlmkit finetune --out` wrote, or a peft save_pretrained folder",
            ),
        )
        manifest_path = adapter / ADAPTER_MANIFEST
        manifest = _read_json(manifest_path, flag=adapter_flag) if manifest_path.is_file() else None
    if model is None:
        model = _recorded_base(adapter, adapter_config, manifest)
    local = Path(model).expanduser().exists()
    if local:
        # Absolute, so an adapter trained on it (peft records this string) finds it anywhere.
        model = str(Path(model).expanduser().resolve())
        config = _read_json(
            Path(model) / "config.json",
            flag="--model",
            what=(
                "is not a model folder (no config.json)",
                "pass a folder written by save_pretrained (or `vlmkit tiny-model`), or a hub id",
            ),
        )
        model_family(config, model)  # not a vision-language model: fail now
        _check_safetensors(Path(model))
    elif _HUB_ID.match(model) and not _looks_local(model):
        from vlmkit.models.hub import prepare_hub_access  # imports huggingface_hub

        prepare_hub_access(model)
        config = None
    else:
        raise UsageError(f"--model {model} does not exist", hint="check the path, or give a hub id")
    if adapter is not None and config is not None:
        _check_adapter_fits(adapter, adapter_config or {}, manifest, model, config)
    return ModelSource(model, local, config, adapter, manifest)


def _looks_local(model: str) -> bool:
    """A value meant as a folder: `./m`, `~/m`, `a/b/c`, or `models/m` where `models/` exists."""
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        return True
    head = model.partition("/")[0]
    return "/" in model and Path(head).is_dir()


def model_family(config: dict[str, Any], model: str) -> Family:
    """The family of a checkpoint's config.json, or an error when it is no vision-language model."""
    model_type = config.get("model_type")
    text_type = (config.get("text_config") or {}).get("model_type")
    family = family_of(str(model_type), text_type)
    if family is not None:
        return family
    if "vision_config" not in config:
        raise InputError(
            f"--model {model} is a {model_type!r} model, not a vision-language model",
            hint="vlmkit needs an image-text-to-text model (PaliGemma, SmolVLM, Qwen2-VL, ...)",
        )
    return generic_chat_family(str(model_type))


def _check_safetensors(folder: Path) -> None:
    """Refuse a folder whose weights are only pickles: unpickling can run arbitrary code."""
    if any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for ext in ("bin", "pt", "pth") for p in folder.glob(f"*.{ext}"))
    if pickles:
        raise InputError(
            f"--model {folder} has only pickled weights ({', '.join(pickles[:3])}); "
            "vlmkit loads safetensors only",
            hint="if you trust the file, load it once with transformers and save_pretrained it "
            "(safetensors is the default)",
        )


def _recorded_base(
    adapter: Path | None, adapter_config: dict[str, Any] | None, manifest: dict[str, Any] | None
) -> str:
    base = (manifest or {}).get("base_model") or (adapter_config or {}).get(
        "base_model_name_or_path"
    )
    if adapter is None or not base:
        where = f"adapter {adapter} records no base model" if adapter else "no model given"
        raise UsageError(f"--model is missing: {where}", hint="pass --model (a folder or hub id)")
    if not isinstance(base, str):
        raise InputError(f"{adapter}: the recorded base model {base!r} is not a string")
    # peft records the base as it was given: a relative path is relative to where training
    # ran, which is here or, most often, the adapter's own parent folder.
    path = Path(base).expanduser()
    for candidate in [path] if path.is_absolute() else [path, adapter.parent / path]:
        if candidate.is_dir():
            return str(candidate)
    if _looks_local(base) or not _HUB_ID.match(base):
        raise InputError(
            f"adapter {adapter} was trained on {base}, which does not exist here",
            hint="pass --model with that base model's folder or hub id",
        )
    return base  # a hub id


def _check_adapter_fits(
    adapter: Path,
    adapter_config: dict[str, Any],
    manifest: dict[str, Any] | None,
    model: str,
    config: dict[str, Any],
) -> None:
    """Refuse an adapter whose base model has another architecture or shape than `model`."""
    base_config = (manifest or {}).get("base_config")
    base = adapter_config.get("base_model_name_or_path")
    if base_config is None and isinstance(base, str) and (Path(base) / "config.json").is_file():
        base_config = _read_json(Path(base) / "config.json", flag="--adapter")
    if not isinstance(base_config, dict):
        return  # nothing to compare before loading: peft's own checks apply at load time
    mine, theirs = architecture(config), architecture(base_config)
    if mine != theirs:
        differs = ", ".join(
            f"{key} {theirs.get(key)} vs {mine.get(key)}"
            for key in sorted(set(mine) | set(theirs))
            if mine.get(key) != theirs.get(key)
        )
        raise InputError(
            f"adapter {adapter} was trained on another base model than --model {model} ({differs})",
            hint=f"pass the base model it was trained on ({base or 'see its adapter_config.json'})",
        )


def architecture(config: dict[str, Any]) -> dict[str, Any]:
    """The parts of a config.json that an adapter's weights depend on."""
    text = config.get("text_config") or config
    shape = {key: text.get(key) for key in _SHAPE_FIELDS if key in text}
    return {"model_type": config.get("model_type"), **shape}


def _read_json(path: Path, *, flag: str, what: tuple[str, str] | None = None) -> dict[str, Any]:
    if not path.is_file():
        problem, hint = what or ("is missing", "check the folder")
        folder = path.parent
        if not folder.exists():
            raise UsageError(f"{flag} {folder} does not exist", hint="check the path")
        raise InputError(f"{flag} {folder} {problem}", hint=hint)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(
            f"{path}: not readable JSON ({error})", hint="is the file complete?"
        ) from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object", hint="is this the right folder?")
    return data
