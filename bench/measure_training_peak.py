"""One `vlmkit finetune` run in this process, measured: its peak resident memory above the
process's baseline (libraries imported, data read, nothing of the model loaded), and on a GPU
`torch.cuda.max_memory_allocated`, as JSON.

The resident memory is a CPU proxy for an accelerator's peak: the training step's tensors
live in the process's memory, beside what the allocator keeps and the libraries load.

    python bench/measure_training_peak.py DATA MODEL OUT '{"method": "lora", "max_steps": 2}'
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def resident() -> tuple[int, int]:
    """(resident bytes now, the process's peak resident bytes) from /proc."""
    status = Path("/proc/self/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in status if ":" in line)
    return (int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024)


def main() -> None:
    data, model, out, flags = sys.argv[1:5]
    import peft  # noqa: F401  (every library the run uses, loaded before the baseline)
    import torch
    import transformers  # noqa: F401
    import trl  # noqa: F401

    from vlmkit.finetune.session import FinetuneRequest, execute, plan
    from vlmkit.finetune.settings import settings_from

    request = FinetuneRequest(
        train=Path(data),
        model=model,
        out=Path(out),
        settings=settings_from(None, json.loads(flags)),
    )
    work = plan(request)
    baseline, _ = resident()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    execute(work)
    _, peak = resident()
    measured = {"baseline": baseline, "peak": peak, "measured": peak - baseline}
    if cuda:
        measured["cuda_max_allocated"] = torch.cuda.max_memory_allocated()
    print(json.dumps(measured))


if __name__ == "__main__":
    main()
