"""A real OpenAI-protocol server for the tests: `transformers serve` on 127.0.0.1, a free port.

It serves one local model folder (pinned), started in its own process group and stopped by
it; nothing but 127.0.0.1 is ever reached. Its hub cache points at an empty folder, so
`GET /v1/models` answers (with no models) instead of failing on a machine without one.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """`transformers serve MODEL` on 127.0.0.1:port; `url` is its OpenAI base URL."""

    def __init__(self, model: Path, workdir: Path, port: int | None = None) -> None:
        self.model, self.workdir, self.port = model, workdir, port or free_port()
        self.process: subprocess.Popen | None = None
        self.log: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 120.0) -> Server:
        cache = self.workdir / "hub-cache"
        cache.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1",
               "OMP_NUM_THREADS": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}  # fmt: skip
        cli = Path(sys.executable).with_name("transformers")
        log = self.log = open(self.workdir / f"serve-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(cli), "serve", str(self.model), "--host", "127.0.0.1", "--port",
             str(self.port), "--device", "cpu"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"transformers serve exited: see {log.name}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1):
                    return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"transformers serve did not answer in {timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None
        if self.log is not None:
            self.log.close()
            self.log = None
