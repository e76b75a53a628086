"""An order-keeping parallel map with a bounded window, for generators that draw many images.

`Pool.imap` reads its whole input up front, so memory would grow with `--n`; here at most
`window` chunks are in flight. Results come back in input order, so the output files do not
depend on the number of workers.

Workers end with their parent, however it ends (`vlmkit.lifetime`): a parent killed by SIGKILL
runs no cleanup, and its workers would go on drawing for nobody.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from vlmkit.lifetime import end_with_parent

Item = TypeVar("Item")
Result = TypeVar("Result")


def ordered_map(
    function: Callable[[Item], Result],
    items: Iterable[Item],
    *,
    workers: int,
    initializer: Callable[..., None],
    initargs: tuple[Any, ...] = (),
    window_per_worker: int = 4,
) -> Iterator[Result]:
    """`map(function, items)` over `workers` processes, each set up once by `initializer`."""
    if workers <= 1:
        initializer(*initargs)
        yield from map(function, items)
        return
    # spawn, not fork: the parent may run threads (rich's progress refresh) that fork copies badly.
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        workers,
        mp_context=context,
        initializer=_worker_initializer,
        initargs=(os.getpid(), initializer, initargs),
    )
    pending: deque[Future[Result]] = deque()
    items = iter(items)
    try:
        # The first submissions start the workers; started while the parent ignores Ctrl-C,
        # they inherit that from their very first instruction, before the initializer runs.
        with _ctrl_c_ignored():
            pending.extend(pool.submit(function, item) for item in itertools.islice(items, workers))
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= workers * window_per_worker:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def _ctrl_c_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may change signal handlers
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _worker_initializer(
    parent: int, initializer: Callable[..., None], initargs: tuple[Any, ...]
) -> None:
    # Ctrl-C reaches the whole process group: let the parent alone handle it and clean up,
    # rather than every worker printing its own KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    end_with_parent(parent)
    initializer(*initargs)
