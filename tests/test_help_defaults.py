"""`--help` shows every default one way: `[default: X]`, a described one as `[default: (…)]`."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from vlmkit.cli import app

COMMANDS = [["score"], ["synth", "circled-letter"], ["convert"], ["infer"], ["finetune"],
            ["pairs"], ["tiny-model"], ["report"]]  # fmt: skip


def _command(path: list[str]):
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_defaults_are_shown_one_way(path):
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    options = result.stdout.partition("Options")[2]  # the docstring above may say "default"
    assert not re.search(r"Default:|\(default|\[\d", options), options
    for param in _command(path).params:
        if isinstance(param.show_default, str):
            assert param.default is None, param.name  # a real default is shown as it is


def test_synth_shows_the_random_presets_values():
    from vlmkit.synth.circled_letter.config import PRESETS

    random = PRESETS["random"]
    params = _command(["synth", "circled-letter"]).params
    shown = {p.name: getattr(p.default, "value", p.default) for p in params}
    expected = {
        "n": random.n, "min_length": random.min_length, "max_length": random.max_length,
        "case": random.case, "seed": random.seed, "oval_scale": random.oval_scale,
        "color": random.colour, "prompt": random.prompt, "answer_format": random.answer_format,
        "style": ",".join(random.styles),
        "image_size": random.image_size[0],
        "thickness": ",".join(f"{v:g}" for v in random.thickness),
        "padding": ",".join(f"{v:g}" for v in random.padding),
        "spacing": ",".join(f"{v:g}" for v in random.spacing),
        "test_fraction": random.test_fraction, "words": random.words,
        "narrow_ovals": random.narrow_ovals,
    }  # fmt: skip
    shown["style"] = ",".join(s.value for s in shown["style"])
    for name, value in expected.items():
        assert str(shown[name]) == str(value), name


def test_finetune_flags_default_to_the_settings_defaults():
    from vlmkit.finetune.settings import SETTING_DEFAULTS

    params = {p.name: p for p in _command(["finetune"]).params}
    for name, default in SETTING_DEFAULTS.items():
        param = params[name]
        if param.is_flag or name in ("report_to", "target_modules"):
            continue  # on/off switches, and lists typed as comma-separated text
        shown = param.default.value if hasattr(param.default, "value") else param.default
        assert shown == default, name


def test_a_flag_left_at_its_shown_default_never_overrides_the_paper_preset(tmp_path):
    import json

    out = tmp_path / "paper"
    args = ["synth", "circled-letter", "--preset", "paper", "--image-size", "256", "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "synth.json").read_text())["config"]
    assert config["min_length"] == 1 and config["max_length"] == 64  # the paper's, not 4 / 12
    assert config["image_size"] == [256, 256]  # the flag given wins
