"""`vlmkit sweep` cost on this machine: per-trial overhead against the same fine-tunes run one
after another by hand, and the throughput of 2 local workers against 1.

"By hand" is measured two ways, each on the same grid of learning rates, tiny model and letters:
the shell loop a user would write (one `vlmkit finetune` process per setting, evaluated by
generation and keeping the best adapter, as a sweep's trials are), and a Python loop calling
finetune's own `plan`/`execute` in one process (what is left is Optuna and the sweep's
bookkeeping). Then the same sweep with `--workers 2` (one thread each) against `--workers 1`.

    python bench/bench_sweep.py                     # 4 trials of 40 steps
    python bench/bench_sweep.py --trials 6 --steps 60
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
COMMON = {"max_steps": None, "batch_size": 8, "eval_every": 20, "eval_samples": 16,
          "eval_max_new_tokens": 4, "save_every": 20}  # fmt: skip


def flags(settings: dict) -> list[str]:
    out = []
    for key, value in settings.items():
        out += [f"--{key.replace('_', '-')}", str(value)]
    return out


def space_file(root: Path, model: Path, data: Path, lrs: tuple[float, ...], steps: int) -> Path:
    settings = {**COMMON, "max_steps": steps}
    lines = [f'model = "{model}"', f'train = "{data}"', 'split = "train"', f'eval = "{data}"',
             'eval_split = "test"', 'metric = "letter_accuracy"', 'sampler = "grid"',
             'pruner = "none"', "[settings]", *(f"{k} = {v}" for k, v in settings.items()),
             "[search]", f"lr = {list(lrs)}"]  # fmt: skip
    path = root / "space.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def timed(command: list[str], env: dict | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - started


def library_loop(model: Path, data: Path, out: Path, lrs: list[float], steps: int) -> None:
    """The fine-tunes through finetune's plan/execute, one after another in this process."""
    from vlmkit.finetune.session import FinetuneRequest, execute, plan
    from vlmkit.finetune.settings import FinetuneSettings

    for i, lr in enumerate(lrs):
        settings = FinetuneSettings(**{**COMMON, "max_steps": steps}, lr=lr,
                                    best_metric="letter_accuracy")  # fmt: skip
        request = FinetuneRequest(train=data, model=str(model), out=out / f"{i:04d}",
                                  settings=settings, split="train", eval_dataset=data,
                                  eval_split="test")  # fmt: skip
        execute(plan(request))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--library-loop", nargs=3, metavar=("MODEL", "DATA", "OUT"))
    args = parser.parse_args()
    lrs = LRS[: args.trials]
    if args.library_loop:
        model, data, out = map(Path, args.library_loop)
        library_loop(model, data, out, list(lrs), args.steps)
        return
    vlmkit = [sys.executable, "-m", "vlmkit"]
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model, data = root / "tiny", root / "letters"
        subprocess.run([*vlmkit, "tiny-model", str(model), "--family", "idefics3"], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        subprocess.run([*vlmkit, "synth", "circled-letter", "--n", "64", "--test-fraction",
                        "0.25", "--image-size", "128", "--max-length", "6", "--seed", "1",
                        "--workers", "1", "-o", str(data)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        space = space_file(root, model, data, lrs, args.steps)
        settings = {**COMMON, "max_steps": args.steps}
        print(f"{len(lrs)} trials of {args.steps} steps (grid over lr), tiny idefics3, "
              f"{os.cpu_count()} cores")  # fmt: skip

        def shell_loop(env: dict | None = None) -> float:
            total = 0.0
            for i, lr in enumerate(lrs):
                total += timed([*vlmkit, "finetune", str(data), "--split", "train", "--model",
                                str(model), "-o", str(root / f"hand-{time.time_ns()}-{i}"),
                                "--lr", str(lr), "--eval", str(data), "--eval-split", "test",
                                "--best-metric", "letter_accuracy", *flags(settings)],
                               env)  # fmt: skip
            return total

        def library(env: dict | None = None) -> float:
            out = root / f"lib-{time.time_ns()}"
            return timed([sys.executable, __file__, "--trials", str(args.trials), "--steps",
                          str(args.steps), "--library-loop", str(model), str(data), str(out)],
                         env)  # fmt: skip

        def sweep(workers: int, env: dict | None = None) -> float:
            out = root / f"sweep-{workers}-{time.time_ns()}"
            return timed([*vlmkit, "sweep", str(space), "-o", str(out), "--workers",
                          str(workers)], env)  # fmt: skip

        hand = shell_loop()
        in_process = library()
        swept = sweep(1)
        print(f"by hand, one `vlmkit finetune` process per setting: {hand:7.1f} s")
        print(f"by hand, finetune plan/execute in one process:       {in_process:7.1f} s "
              "(whole process)")  # fmt: skip
        print(f"vlmkit sweep, 1 worker (whole command):             {swept:7.1f} s")
        print(f"ratio sweep / shell loop:        {swept / hand:.2f}x (requirement: <= 1.05x)")
        print(
            f"ratio sweep / in-process loop:   {swept / in_process:.2f}x "
            f"(the sweep's own overhead: {(swept - in_process) / len(lrs):+.2f} s per trial)"
        )
        one = sweep(1, one_thread)
        two = sweep(2, one_thread)
        print(f"1 worker, 1 thread:  {one:6.1f} s, {60 * len(lrs) / one:5.2f} trials/min")
        print(f"2 workers, 1 thread each: {two:6.1f} s, {60 * len(lrs) / two:5.2f} trials/min")
        print(f"throughput 2 workers / 1: {one / two:.2f}x")


if __name__ == "__main__":
    main()
