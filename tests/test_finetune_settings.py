"""Fine-tuning settings from flags and TOML/YAML files: merged, typed, and checked by name."""

from __future__ import annotations

import pytest

from vlmkit.errors import InputError, UsageError
from vlmkit.finetune.settings import FinetuneSettings, check_report_to, settings_from


def test_file_then_flags(tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text("lr: 2e-4\nlora-r: 8\ntarget_modules: q_proj, v_proj\nepochs: 1\n")
    settings = settings_from(config, {"lora_r": 4, "seed": None})
    assert (settings.lr, settings.lora_r, settings.epochs) == (2e-4, 4, 1.0)
    assert settings.target_modules == ("q_proj", "v_proj")
    assert settings_from(None, {}) == FinetuneSettings()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('train-vision = "no"', "train-vision = 'no' is not true or false"),
        ('lora-r = "8"', "lora-r = '8' is not a whole number"),
        ("batch-size = 2.5", "batch-size = 2.5 is not a whole number"),
        ("max-steps = true", "max-steps = True is not a whole number"),
        ('lr = "fast"', "lr = 'fast' is not a number"),
        ("target-modules = 5", "target-modules = 5 is not a list of names"),
        ("learning-rate = 1e-4", "unknown setting 'learning-rate'"),
        ("lora-r = ", "--config"),
    ],
)
def test_bad_config_values_name_the_key(tmp_path, text, message):
    config = tmp_path / "train.toml"
    config.write_text(text + "\n")
    with pytest.raises((UsageError, InputError), match=message):
        settings_from(config, {})


def test_bad_config_files(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        settings_from(tmp_path / "none.toml", {})
    (tmp_path / "a.ini").write_text("x")
    with pytest.raises(UsageError, match=r"expected a \.toml, \.yaml or \.yml file"):
        settings_from(tmp_path / "a.ini", {})
    (tmp_path / "latin.toml").write_bytes(b"seed = 1 # \xe9\n")
    with pytest.raises(InputError, match="is not UTF-8"):
        settings_from(tmp_path / "latin.toml", {})
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(InputError, match="expected a table of settings"):
        settings_from(tmp_path / "list.yaml", {})


def test_report_to_is_checked_before_training():
    check_report_to(("none",))
    with pytest.raises(UsageError, match="'bogus' is not a tracker"):
        check_report_to(("bogus",))
    with pytest.raises(UsageError, match="clearml is not installed") as caught:
        check_report_to(("clearml",))  # not installed here
    assert caught.value.hint == "pip install clearml"


def test_eval_samples_are_a_fixed_draw_from_the_whole_set(tmp_path):
    from conftest import write_jsonl

    from vlmkit.finetune.data import read_training_data

    (tmp_path / "a.png").write_bytes(b"")
    rows = [{"id": f"s{i}", "file_name": "a.png", "prompt": "q", "target": "t"} for i in range(50)]
    write_jsonl(tmp_path / "metadata.jsonl", rows)
    data = read_training_data(tmp_path, None, flag="--eval")
    drawn = [r.id for r in data.sample(10)]
    assert drawn == [r.id for r in data.sample(10)]  # the same at every evaluation
    assert drawn != [f"s{i}" for i in range(10)] and len(set(drawn)) == 10
    assert drawn == sorted(drawn, key=lambda i: int(i[1:]))  # in dataset order
    assert len(data.sample(500)) == 50
