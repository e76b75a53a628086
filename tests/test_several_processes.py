"""`finetune` in two real processes on CPU (gloo): what `torchrun` and `accelerate launch
--multi_gpu` start on a machine without GPUs, and what the README tells users to run.

Two processes of a tiny model on 2 cores are slower than one; these tests prove correctness
(one adapter, written once, loadable; evaluation by generation under plain data parallelism;
one voice for the run), not speed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from model_helpers import REPO, memory_dataset, read_jsonl, vlmkit

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ddp")
    assert vlmkit("tiny-model", root / "model", "--family", "idefics3").exit_code == 0
    return root / "model", memory_dataset(root / "data")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _launch(launcher: list[str], *args: str | Path, env: dict | None = None):
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    command = [sys.executable, "-m", *launcher, "-m", "vlmkit", *map(str, args)]
    return subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip


def _torchrun() -> list[str]:
    return ["torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port())]


def _accelerate(*flags: str) -> list[str]:
    return ["accelerate.commands.launch", *flags, "--num_processes", "2", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(_free_port())]  # fmt: skip


def test_torchrun_trains_one_adapter_in_two_processes_with_eval(setup, tmp_path):
    model, data = setup
    out = tmp_path / "run"
    result = _launch(_torchrun(), "finetune", data, "--model", model, "-o", out,
                     "--max-steps", "10", "--batch-size", "2", "--grad-accum", "2",
                     "--eval", data, "--eval-every", "5", "--eval-max-new-tokens", "4",
                     "--best-metric", "cer")  # fmt: skip
    assert result.returncode == 0, result.stderr
    # One voice: the main process speaks, the other trains.
    assert result.stdout.count("Wrote the adapter") == 1
    assert result.stderr.count("in 2 processes") == 1
    assert result.stderr.count("also training samples") == 1 and "[rank" not in result.stderr
    training = json.loads((out / "vlmkit-adapter.json").read_text())["training"]
    assert training["processes"] == 2 and training["effective_batch_size"] == 2 * 2 * 2
    # Evaluations on logging steps (every 5 by default): the loss lines are kept, and the
    # processes stay in step (the main one once skipped a collective there).
    log = read_jsonl(out / "log.jsonl")
    assert [row["step"] for row in log if "eval/cer" in row] == [5, 10]
    assert [row["step"] for row in log if "loss" in row] == [5, 10]
    assert (out / "best" / "adapter_model.safetensors").is_file()
    preds = tmp_path / "p.jsonl"
    assert vlmkit("infer", data, "--adapter", out, "-o", preds).exit_code == 0
    assert len(read_jsonl(preds)) == 4


def test_accelerate_multi_gpu_starts_two_cpu_processes(setup, tmp_path):
    model, data = setup
    out = tmp_path / "run"
    result = _launch(_accelerate("--multi_gpu"), "finetune", data, "--model", model, "-o", out,
                     "--max-steps", "2", "--batch-size", "2")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "vlmkit-adapter.json").read_text())["training"]["processes"] == 2


def test_accelerate_without_multi_gpu_says_it_started_one_process(setup, tmp_path):
    model, data = setup
    result = _launch(_accelerate(), "finetune", data, "--model", model, "-o", tmp_path / "run",
                     "--max-steps", "1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "asked for several processes but started one" in result.stderr
    assert "--multi_gpu" in result.stderr and "torchrun --nproc_per_node" in result.stderr


def test_sharded_training_refuses_eval_once_naming_what_it_refuses(setup, tmp_path):
    model, data = setup
    # What `accelerate launch --config_file fsdp.yaml` tells each process (FSDP itself needs
    # GPUs, so the refusal, which comes first, is what a CPU can check).
    result = _launch(_torchrun(), "finetune", data, "--model", model, "-o", tmp_path / "run",
                     "--eval", data, env={"ACCELERATE_USE_FSDP": "true"})  # fmt: skip
    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines() if line.lstrip().startswith("Error:")]
    assert len(ours) == 1 and "--eval generates in one process, and FSDP splits" in ours[0]
    assert "plain data-parallel runs can keep --eval" in result.stderr
    assert not (tmp_path / "run").exists()


def test_an_error_every_process_meets_is_printed_once(setup, tmp_path):
    model, data = setup
    result = _launch(_torchrun(), "finetune", data, "--model", model, "-o", tmp_path / "run",
                     "--max-length", "10")  # fmt: skip
    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines() if line.lstrip().startswith("Error:")]
    assert len(ours) == 1, result.stderr  # (the launcher then reports the exit statuses)
    assert "exceed 10 tokens" in result.stderr


def test_the_processes_end_with_a_killed_launcher(setup, tmp_path):
    import signal
    import time

    model, data = setup
    out = tmp_path / "run"
    command = [sys.executable, "-m", *_torchrun(), "-m", "vlmkit", "finetune", str(data),
               "--model", str(model), "-o", str(out), "--max-steps", "5000"]  # fmt: skip
    launcher = subprocess.Popen(command, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (out / "log.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # both processes are training by now
    workers = _children(launcher.pid)
    assert len(workers) == 2
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)


def _children(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
