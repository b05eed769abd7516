"""Ordered, bounded parallel map over worker processes: results come back in input order
(so output is the same for any worker count) and only a few items are in flight (so a
streamed input is never read far ahead of what has been written)."""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _worker_init() -> None:
    # One worker = one core: keep the Rust tokenizer from starting its own thread pool.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


def ordered_parallel_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``map(fn, items)`` over ``workers`` processes, in input order, with at most
    ``2 * workers`` items in flight. ``workers <= 1`` runs in this process. ``fn`` and the
    items must pickle; processes are spawned (not forked: the parent may hold threads)."""
    if workers <= 1:
        yield from map(fn, items)
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init) as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
