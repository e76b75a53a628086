"""`vlmkit tiny-model`: usage errors, the output folder policy, and a model that loads back."""

from __future__ import annotations

import json

import pytest
from model_helpers import vlmkit


def test_an_unknown_family_is_a_usage_error(tmp_path):
    result = vlmkit("tiny-model", tmp_path / "m", "--family", "llama")
    assert result.exit_code == 2
    assert "paligemma" in result.stderr  # the choices are listed


def test_a_folder_vlmkit_did_not_write_is_never_replaced(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "notes.txt").write_text("mine")
    result = vlmkit("tiny-model", tmp_path / "m", "--family", "paligemma")
    assert result.exit_code == 2 and "--overwrite" in result.stderr
    result = vlmkit("tiny-model", tmp_path / "m", "--family", "paligemma", "--overwrite")
    assert result.exit_code == 2
    assert "only replaces a folder that vlmkit tiny-model wrote" in result.stderr
    assert (tmp_path / "m" / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_build_overwrite_and_the_record(tmp_path):
    out = tmp_path / "m"
    result = vlmkit("tiny-model", out, "--family", "gemma3", "--seed", "4")
    assert result.exit_code == 0, result.output
    assert "Writing model shards" not in result.stderr
    assert json.loads((out / "tiny-model.json").read_text())["family"] == "gemma3"
    first = (out / "model.safetensors").read_bytes()
    assert vlmkit("tiny-model", out, "--family", "gemma3", "--seed", "4").exit_code == 2
    result = vlmkit("tiny-model", out, "--family", "gemma3", "--seed", "4", "--overwrite")
    assert result.exit_code == 0
    assert (out / "model.safetensors").read_bytes() == first
    assert not list(tmp_path.glob(".m.*"))  # no staging folder left behind


@pytest.mark.slow
def test_weights_are_readable_as_the_umask_says(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        assert vlmkit("tiny-model", tmp_path / "m", "--family", "paligemma").exit_code == 0
    finally:
        os.umask(mask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "m").iterdir()}
    assert modes["model.safetensors"] == 0o644, modes  # not the 0600 of a temporary file
