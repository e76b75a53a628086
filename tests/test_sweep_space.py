"""The SPACE file of `vlmkit sweep`: what it may say, and each mistake named before a study."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlmkit.errors import VlmkitError
from vlmkit.sweep.space import Choice, Range, read_space

BASE = """
model = "m"
train = "data/train"
eval = "data/eval"
metric = "cer"
"""


def _space(tmp_path: Path, body: str, name: str = "space.toml", **overrides):
    path = tmp_path / name
    path.write_text(body, "utf-8")
    return read_space(path, overrides)


def _error(tmp_path: Path, body: str, **overrides) -> str:
    with pytest.raises(VlmkitError) as caught:
        _space(tmp_path, body, **overrides)
    return f"{caught.value.message} | {caught.value.hint}"


def test_lists_ranges_and_choices(tmp_path):
    space = _space(tmp_path, BASE + """
trials = 5
[settings]
max_steps = 10
eval_every = 5
[search]
lr = {low = 1e-5, high = 1e-3, log = true}
lora_r = [8, 16]
lora_dropout = {low = 0.0, high = 0.1, step = 0.05}
target_modules = {choice = [["q_proj", "v_proj"], "q_proj"]}
""")  # fmt: skip
    assert space.search["lr"] == Range("lr", 1e-5, 1e-3, integer=False, log=True)
    assert space.search["lora_r"] == Choice("lora_r", (8, 16))
    assert space.search["lora_dropout"].grid() == [0.0, 0.05, 0.1]
    assert space.search["target_modules"].values == ("q_proj,v_proj", "q_proj")
    assert space.direction == "minimize"  # cer: lower is better
    assert space.sampler == "tpe" and space.budget() == 5
    settings = space.trial_settings({"lora_r": 8, "target_modules": "q_proj,v_proj"})
    assert settings.lora_r == 8 and settings.target_modules == ("q_proj", "v_proj")
    assert settings.max_steps == 10


def test_grid_budget_is_every_point_unless_fewer_trials(tmp_path):
    body = BASE + '\nsampler = "grid"\n[search]\nlora_r = {low = 4, high = 16, step = 4}\n'
    body += "lr = [1e-4, 2e-4]\n"
    space = _space(tmp_path, body)
    assert space.grid_space() == {"lora_r": [4, 8, 12, 16], "lr": [1e-4, 2e-4]}
    assert space.budget() == 8
    assert _space(tmp_path, body, trials=3).budget() == 3


def test_yaml_and_flags_override_the_file(tmp_path):
    body = "model: m\ntrain: t\neval: e\nmetric: cer\ntrials: 2\n"
    body += "search:\n  lr: {low: 1e-5, high: 1e-3}\n"
    space = _space(tmp_path, body, name="space.yaml", metric="exact_match", trials=7,
                   timeout="90m", model="other")  # fmt: skip
    assert space.metric == "exact_match" and space.direction == "maximize"
    assert space.trials == 7 and space.timeout == 5400 and space.model == "other"
    assert space.search["lr"].low == 1e-5  # YAML reads 1e-5 as text: a number all the same


def test_identity_ignores_budget_but_not_the_space(tmp_path):
    body = BASE + "trials = 2\n[search]\nlr = [1e-4, 2e-4]\n"
    one, two = _space(tmp_path, body), _space(tmp_path, body, trials=9, sampler="random")
    assert one.fingerprint() == two.fingerprint()
    three = _space(tmp_path, body.replace("2e-4", "3e-4"))
    assert three.fingerprint() != one.fingerprint()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "[search]\nlearning_rate = [1e-4]",
            "unknown setting 'learning_rate' | did you mean 'lr'?",
        ),
        ("[settings]\nlora_rank = 8\n[search]\nlr = [1e-4]", "did you mean 'lora_r'"),
        ("lora_r = 8\n[search]\nlr = [1e-4]", "'lora_r' is a fine-tuning setting"),
        ("sampel = 'grid'\n[search]\nlr = [1e-4]", "unknown key 'sampel' | did you mean 'sampler'"),
        ("[search]\nlr = {low = 1e-3, high = 1e-5}", "low 0.001 is above high 1e-05 | swap them"),
        ("[search]\nlr = {low = 1e-4, high = 1e-4}", "is empty (low = high)"),
        (
            "[search]\nlora_dropout = {low = 0.0, high = 0.1, log = true}",
            "a log scale needs a range above 0",
        ),
        ("[search]\nlr = []", "lists no values"),
        ("[search]\nlr = [1e-4, 1e-4]", "lists a value twice"),
        ("[search]\nlr = {low = 1e-5}", "a range needs low and high"),
        (
            "[search]\nlr = {low = 1e-5, high = 2, log = true}",
            "search.lr = 2.0: --lr 2.0 makes no sense",
        ),
        ("[search]\nlora_r = {low = 0, high = 8}", "--lora-r must be at least 1"),
        ("[search]\nlora_r = {low = 1.5, high = 8}", "low = 1.5 is not a whole number"),
        ("[search]\nmethod = {low = 1, high = 2}", "method is not a number, so it has no range"),
        ("[search]\nbest_metric = ['cer']", "a sweep sets it"),
        ("[search]\ndevice = ['cpu']", "--devices gives each worker its device"),
        ("[settings]\nbest_metric = 'cer'\n[search]\nlr = [1e-4]", "set metric = ..."),
        ("[settings]\nlr = 1e-4\n[search]\nlr = [1e-4]", "both in [settings] and in [search]"),
        ("[search]\n", "names no setting to vary"),
        ("sampler = 'grid'\n[search]\nlr = {low = 1e-5, high = 1e-3}", "a grid needs the values"),
        ("sampler = 'tpe'\n[search]\nlr = [1e-4]", "needs a budget"),
        ("trials = 2\ntimeout = 'soon'\n[search]\nlr = [1e-4]", "timeout 'soon' is not a duration"),
        ("trials = 0\n[search]\nlr = [1e-4]", "trials 0 must be a whole number, at least 1"),
        ("trials = 2\nsampler = 'bayes'\n[search]\nlr = [1e-4]", "sampler 'bayes' is not one of"),
        ("trials = 2\ndirection = 'up'\n[search]\nlr = [1e-4]", "direction 'up'"),
        ("[search]\nobjective = ['sft', 'dpo']", "sweep each objective on its own data"),
        (
            "[search]\nlora_dropout = {low = 0.0, high = 0.1, step = 0.03}",
            "is not a whole number of steps of 0.03",
        ),
        ("trials = 2\ntimeout = 0\n[search]\nlr = [1e-4]", "timeout 0 must be above 0"),
        (
            "sampler = 'grid'\n[search]\nlr = {low = 1e-6, high = 1e-2, step = 1e-11}",
            "has 999,900,001 values: a grid would never finish",
        ),
        (
            "sampler = 'grid'\n[search]\nlora_r = {low = 1, high = 200, step = 1}\n"
            "seed = {low = 0, high = 100, step = 1}",
            "the grid has 20,200 points",
        ),
    ],
)
def test_mistakes_are_named(tmp_path, body, expected):
    assert expected in _error(tmp_path, BASE + body)


def test_missing_essentials(tmp_path):
    search = "\n[search]\nlr = [1e-4]"
    assert "names no eval dataset" in _error(tmp_path, 'model = "m"\ntrain = "t"' + search)
    body = 'model = "m"\ntrain = "t"\neval = "e"' + search
    assert "names no metric" in _error(tmp_path, body)
    assert "did you mean 'exact_match'" in _error(tmp_path, body, metric="exact_macth")
    assert "names no model" in _error(tmp_path, 'train = "t"\neval = "e"\nmetric = "cer"' + search)


def test_flags_are_named_as_flags(tmp_path):
    body = BASE + "trials = 2\n[search]\nlr = [1e-4]\n"
    assert "--timeout 'junk' is not a duration" in _error(tmp_path, body, timeout="junk")
    assert "--metric: unknown metric 'letter_acc'" in _error(tmp_path, body, metric="letter_acc")
    assert "--sampler-seed -3 must be a whole number" in _error(tmp_path, body, sampler_seed=-3)


def test_values_as_they_read_back(tmp_path):
    """What a study records is compared after a JSON round trip (lists, not tuples), and YAML's
    numbers-as-text are numbers."""
    body = BASE + 'trials = 2\npruner_startup_trials = 0\n[settings]\ntarget_modules = ["q_proj"]'
    space = _space(tmp_path, body + "\n[search]\nlr = [1e-4]\n")
    assert space.identity()["settings"]["target_modules"] == ["q_proj"]
    assert space.pruner_startup_trials == 0
    yaml = "model: m\ntrain: t\neval: e\nmetric: cer\ntrials: 2\nsearch:\n  lr: [1e-4, 2e-4]\n"
    assert _space(tmp_path, yaml, name="s.yaml").search["lr"].values == (1e-4, 2e-4)
    (tmp_path / "folder").mkdir()
    with pytest.raises(VlmkitError, match="is a folder"):
        read_space(tmp_path / "folder", {})
