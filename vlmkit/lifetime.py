"""A process that ends when the process that started it ends, however that one ends.

A parent killed by SIGKILL runs no cleanup: its drawing workers, or the training processes a
launcher started, would go on for nobody (and write into folders the next run uses). On Linux
the child asks the kernel for a signal when its parent dies (`prctl(PR_SET_PDEATHSIG)`);
elsewhere a thread in the child watches for the parent to be gone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
"""From <linux/prctl.h>."""


def end_with_parent(parent: int) -> None:
    """Make this process end when process `parent` (which started it) ends."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            # The parent may have died before the request was made: then no signal comes.
            if os.getppid() != parent:
                os._exit(1)
            return
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)
