"""pyproject.toml lists every package, so an installed (non-editable) vlmkit has all its parts."""

from __future__ import annotations

import pytest
from conftest import REPO

tomllib = pytest.importorskip("tomllib")


def setuptools_config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_is_listed():
    listed = set(setuptools_config()["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(REPO).parts) for init in (REPO / "vlmkit").rglob("*.py")
    }
    on_disk |= {"vlmkit.synth.data", "vlmkit.fonts"}  # data-only packages
    assert on_disk == listed


def test_fonts_and_word_list_ship_as_package_data():
    config = setuptools_config()
    assert config["package-dir"] == {"vlmkit.fonts": "fonts"}
    fonts = list((REPO / "fonts").glob("*.ttf"))
    assert fonts and all(p.suffix == ".ttf" for p in fonts)
    assert "*.ttf" in config["package-data"]["vlmkit.fonts"]
    data = REPO / "vlmkit" / "synth" / "data"
    patterns = config["package-data"]["vlmkit.synth.data"]
    for path in data.iterdir():
        assert any(path.match(p) for p in patterns), path.name


def test_the_example_makefile_plans_the_whole_loop():
    """`make -n` on the users' Makefile: every step is a vlmkit command, in order."""
    import shutil
    import subprocess

    if shutil.which("make") is None:
        import pytest

        pytest.skip("make is not installed")
    result = subprocess.run(
        ["make", "-n", "-f", str(REPO / "examples" / "finetune" / "Makefile"), "report"],
        capture_output=True, text=True, check=True, cwd=REPO / "examples" / "finetune",
    )  # fmt: skip
    commands = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("vlmkit")]
    assert commands[0] == "convert" and commands[-1] == "report"
    assert {"infer", "finetune", "score"} <= set(commands)
