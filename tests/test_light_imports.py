"""`vlmkit --help`, `score` and `synth` never import the heavy model libraries (fresh processes)."""

from __future__ import annotations

import subprocess
import sys

from conftest import EXAMPLE_CORD

HEAVY = ("torch", "transformers", "peft", "trl", "bitsandbytes", "datasets", "pandas", "accelerate",
         "optuna", "openai")  # fmt: skip

# Runs the real CLI in a fresh interpreter and reports every heavy module it tried to import.
# A meta-path spy sees attempts even where the library is not installed (the light install),
# so an accidental import is caught either way.
PROBE = """
import sys
HEAVY = {heavy!r}
attempted = set()

class Spy:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HEAVY:
            attempted.add(name.partition(".")[0])
        return None

sys.meta_path.insert(0, Spy())
from vlmkit.cli import app
try:
    app(sys.argv[1:])
except SystemExit:
    pass
attempted.update(m for m in HEAVY if m in sys.modules)
print("HEAVY=" + ",".join(sorted(attempted)))
"""


def heavy_modules_after(*args: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    marker = [line for line in result.stdout.splitlines() if line.startswith("HEAVY=")]
    assert marker, result.stdout + result.stderr
    return [m for m in marker[-1].removeprefix("HEAVY=").split(",") if m]


def test_help_imports_nothing_heavy():
    assert heavy_modules_after("--help") == []


def test_score_imports_nothing_heavy():
    example = str(EXAMPLE_CORD)
    metrics = "field_f1,ted_accuracy,cer,bleu,ter,hf_bleu"
    args = ("score", f"{example}/predictions-b.jsonl", example, "--baseline",
            f"{example}/predictions-a.jsonl", "-m", metrics)  # fmt: skip
    assert heavy_modules_after(*args) == []


def test_synth_imports_nothing_heavy(tmp_path):
    args = ("synth", "circled-letter", "--n", "3", "--image-size", "128", "-o", str(tmp_path / "d"))
    assert heavy_modules_after(*args) == []
    assert (tmp_path / "d" / "metadata.jsonl").is_file()  # the run really drew something


def test_convert_imports_nothing_heavy(tmp_path, cord_imagefolder):
    args = ("convert", "cord-v2", str(cord_imagefolder), "-o", str(tmp_path / "d"))
    assert heavy_modules_after(*args) == []
    assert (tmp_path / "d" / "test" / "metadata.jsonl").is_file()


def test_model_commands_check_their_input_before_importing_torch(tmp_path):
    """`infer` and `tiny-model` import the model libraries only once there is work to do."""
    assert heavy_modules_after("infer", "--help") == []
    assert heavy_modules_after("tiny-model", "--help") == []
    missing = str(tmp_path / "missing")
    assert heavy_modules_after("infer", missing, "--model", missing, "-o", missing) == []
    dataset = str(EXAMPLE_CORD)
    out = str(tmp_path / "p.jsonl")
    assert heavy_modules_after("infer", dataset, "--model", missing, "-o", out) == []
    # A served model is a name on a server: no torch, no local config.json, whatever happens.
    served = ("infer", dataset, "--backend", "openai", "--endpoint", "http://127.0.0.1:9/v1",
              "--model", "some/model", "-o", out)  # fmt: skip
    assert heavy_modules_after(*served) == ["openai"]


def test_report_imports_nothing_heavy(tmp_path):
    assert heavy_modules_after("report", "--help") == []


def test_pairs_imports_nothing_heavy(tmp_path):
    example = str(EXAMPLE_CORD)
    args = ("pairs", example, f"{example}/predictions-a.jsonl", "-o", str(tmp_path / "p"))
    assert heavy_modules_after(*args) == []
    assert (tmp_path / "p" / "metadata.jsonl").is_file()  # real pairs were written
    assert heavy_modules_after("finetune", "--help") == []
