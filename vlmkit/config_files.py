"""TOML and YAML files of settings (`finetune --config`, `sweep SPACE`): one reader, one
error style."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vlmkit.errors import InputError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, before it joined the standard library
    import tomli as tomllib


def read_table(path: Path, label: str) -> dict[str, Any]:
    """The top-level table of a .toml, .yaml or .yml file; `label` names it in errors
    (e.g. `--config x.toml`)."""
    if path.is_dir():
        raise UsageError(f"{label} is a folder", hint="name the .toml or .yaml file")
    if not path.is_file():
        raise UsageError(f"{label} does not exist", hint="check the path")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{label} is not UTF-8 text ({error.reason})") from None
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise UsageError(f"{label}: expected a .toml, .yaml or .yml file")
    except (tomllib.TOMLDecodeError, ValueError) as error:
        looks_yaml = path.suffix == ".toml" and ": " in text and " = " not in text
        hint = "it reads like YAML: name it .yaml" if looks_yaml else "fix the file's syntax"
        raise InputError(f"{label}: {error}", hint=hint) from None
    except Exception as error:  # yaml.YAMLError, without importing yaml for TOML users
        if type(error).__module__.startswith("yaml"):
            raise InputError(f"{label}: {error}".splitlines()[0], hint="fix the YAML") from None
        raise
    if not isinstance(data, dict):
        raise InputError(f"{label}: expected a table of settings, got {type(data).__name__}")
    return data


def unknown_key(
    label: str,
    key: str,
    known: Iterable[str],
    what: str = "setting",
    aliases: dict[str, str] | None = None,
    joiner: str = "-",
) -> InputError:
    """The error for a key no one reads, with a did-you-mean among `known` (words joined by
    `joiner`, as the file's other keys are), or the key's name elsewhere (`aliases`:
    transformers' `learning_rate` is vlmkit's `lr`)."""
    other = "_" if joiner == "-" else "-"
    spelled = sorted(name.replace(other, joiner) for name in known)
    alias = (aliases or {}).get(str(key).replace("-", "_"))
    close = [alias.replace(other, joiner)] if alias else []
    close = close or difflib.get_close_matches(str(key).replace(other, joiner), spelled, n=1)
    hint = (f"did you mean {close[0]!r}? " if close else "") + f"{what}s: {', '.join(spelled)}"
    return InputError(f"{label}: unknown {what} {str(key)!r}", hint=hint)
