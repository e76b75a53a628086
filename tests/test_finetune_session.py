"""The finetune session: `plan` checks everything before weights load; the stages of `execute`
can be run one by one; objectives come from a registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from model_helpers import memory_dataset, vlmkit

from vlmkit.errors import UsageError
from vlmkit.finetune.objectives import OBJECTIVES, objective_named
from vlmkit.finetune.session import FinetuneRequest, plan
from vlmkit.finetune.settings import FinetuneSettings


def test_an_unknown_objective_gets_a_did_you_mean():
    with pytest.raises(UsageError, match="'stf' is not a training objective") as caught:
        objective_named("stf")
    assert "Did you mean 'sft'?" in caught.value.hint
    with pytest.raises(UsageError, match="not a training objective"):
        FinetuneSettings(objective="ppo")
    assert set(OBJECTIVES) >= {"sft"}


def test_plan_checks_before_any_model_loads(tmp_path: Path):
    import subprocess
    import sys

    data = memory_dataset(tmp_path / "data")
    request = FinetuneRequest(train=data, model=str(tmp_path / "nowhere"), out=tmp_path / "o",
                              settings=FinetuneSettings())  # fmt: skip
    with pytest.raises(UsageError, match="does not exist"):
        plan(request)
    eval_only = FinetuneRequest(train=data, model="x/y", out=tmp_path / "o",
                                settings=FinetuneSettings(),
                                eval_flags_given=("--eval-every",))  # fmt: skip
    with pytest.raises(UsageError, match="--eval-every apply to --eval"):
        plan(eval_only)
    assert not (tmp_path / "o").exists() and not (tmp_path / ".o.lock").exists()
    # In a fresh process: planning a whole run imports none of the heavy libraries.
    script = (
        "import sys; from pathlib import Path; "
        "from vlmkit.finetune.session import FinetuneRequest, plan; "
        "from vlmkit.finetune.settings import FinetuneSettings; "
        f"work = plan(FinetuneRequest(train=Path({str(data)!r}), model='org/m', "
        f"out=Path({str(tmp_path / 'o')!r}), settings=FinetuneSettings())); "
        "work.lock.release(); "
        "print(sorted(m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules))"
    )
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_the_stages_run_one_by_one(tmp_path: Path, torch_one_thread):
    from vlmkit.finetune import train as stages
    from vlmkit.finetune.training_log import Hooks

    assert vlmkit("tiny-model", tmp_path / "model", "--family", "idefics3").exit_code == 0
    data = memory_dataset(tmp_path / "data")
    out = tmp_path / "run"
    request = FinetuneRequest(train=data, model=str(tmp_path / "model"), out=out,
                              settings=FinetuneSettings(max_steps=2))  # fmt: skip
    work = plan(request)
    try:
        loaded = stages.load_for_training(work.source, work.settings, work.processes)
        assert not out.exists()  # nothing written by loading
        built = stages.build_trainer(
            work.objective, loaded, work.train, None, work.settings, work.work, out=out,
            processes=work.processes, resume=False, hooks=Hooks(),
        )  # fmt: skip
        assert built.examples == 4 and (out / "finetune-run.json").is_file()
        report = stages.run_training(built, work.work, resume=False)
        assert report.steps == 2 and (out / "adapter_model.safetensors").is_file()
        manifest = stages.save_outputs(
            loaded, built, report, work.train, None, work.settings, work.work, out=out,
            processes=work.processes,
        )  # fmt: skip
        assert manifest["objective"] == "sft" and manifest["training"]["steps"] == 2
        assert not (out / "vlmkit-adapter.json").exists()  # the session writes it last
    finally:
        work.lock.release()
    json.dumps(manifest)  # JSON all through
