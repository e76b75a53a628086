"""Peak resident memory of a command and of its child processes, sampled from /proc.

ru_maxrss would not do: Linux carries it across exec, so a child of a big benchmark process
would report the benchmark's own peak.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def run_measured(command: list[str], interval: float = 0.02) -> tuple[float, float, float]:
    """Run `command`; return (seconds, parent's peak MB, largest child's peak MB)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parent = child = 0
    while process.poll() is None:
        table = _process_table()
        parent = max(parent, table.get(process.pid, (0, 0))[1])
        child = max([child, *(rss for ppid, rss in table.values() if ppid == process.pid)])
        time.sleep(interval)
    elapsed = time.perf_counter() - start
    if process.returncode:
        raise RuntimeError(process.stderr.read().decode())
    return elapsed, parent / 1024, child / 1024


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, resident kB)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss = int(fields.get("VmRSS", "0 kB").split()[0])
        table[int(entry.name)] = (int(fields["PPid"]), rss)
    return table
