"""Which process of a run this is, read once: several processes come from torchrun or
`accelerate launch`, which tell each one its place through the environment.

Stdlib only: the CLI asks before anything heavy loads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from vlmkit.errors import UsageError


@dataclass(frozen=True)
class Processes:
    """This process's place in the run (one process: rank 0 of 1)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    sharded: str | None = None
    """"FSDP" or "DeepSpeed ZeRO-3" when the weights are split between the processes."""

    @property
    def main(self) -> bool:
        """The process that writes OUT, logs and prints (the others train and wait)."""
        return self.rank == 0

    @property
    def several(self) -> bool:
        return self.world_size > 1


def current() -> Processes:
    env = os.environ
    sharded = None
    if _true(env.get("ACCELERATE_USE_FSDP")):
        sharded = "FSDP"
    elif (
        _true(env.get("ACCELERATE_USE_DEEPSPEED"))
        and env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3"
    ):
        sharded = "DeepSpeed ZeRO-3"
    return Processes(
        rank=int(env.get("RANK", "0")),
        local_rank=int(env.get("LOCAL_RANK", "0")),
        world_size=int(env.get("WORLD_SIZE", "1")),
        sharded=sharded,
    )


def launched_alone() -> bool:
    """Whether `accelerate launch` was asked for several processes but started just this one.

    Its simple launcher (chosen on a machine without GPUs unless `--multi_gpu` is given) runs
    the command once, in-process, yet still sets the rendezvous address it would give several
    processes; torchrun and accelerate's multi-process launcher set WORLD_SIZE.
    """
    env = os.environ
    by_accelerate = "ACCELERATE_MIXED_PRECISION" in env
    return by_accelerate and "MASTER_ADDR" in env and "WORLD_SIZE" not in env


def check_eval_fits(processes: Processes) -> None:
    """Evaluation by generation runs in the main process while the others wait: that needs
    each process to hold the whole model, which FSDP and ZeRO-3 do not."""
    if processes.sharded:
        raise UsageError(
            f"--eval generates in one process, and {processes.sharded} splits the weights "
            "between processes",
            hint="leave out --eval under sharded training and score the adapter afterwards "
            "with vlmkit infer --adapter OUT (plain data-parallel runs can keep --eval)",
        )


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")
