"""Stop requests from schedulers and users: SIGTERM (SLURM, Kubernetes, cloud preemption)
and SIGINT (Ctrl-C) ask a stage to stop at the next step boundary, not to die mid-step.

The stage finishes the step it is in, writes a checkpoint, marks its ledger record
`interrupted` and exits with `exit_code(signal)` = 128 + the signal's number (143 for
SIGTERM, 130 for SIGINT, the shell's convention), so `load_part=all` resumes it exactly. A
second SIGINT while stopping raises KeyboardInterrupt at once (the user insists). With
several processes, a stop is taken only when every process agrees (see `StopRequest.any`),
so that all of them write the same checkpoint at the same step.
"""

from __future__ import annotations

import signal
import types
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

HANDLED = (signal.SIGTERM, signal.SIGINT)


def exit_code(signum: int) -> int:
    """The exit status of a stage stopped by `signum` (the shell's 128 + n convention)."""
    return 128 + int(signum)


class StopRequest:
    """The first stop signal received, if any; set from the signal handler."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def __bool__(self) -> bool:
        return self.signum is not None

    def handle(self, signum: int, frame: types.FrameType | None) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, without a checkpoint
        if self.signum is None:
            self.signum = signum

    def any(self, process_count: int) -> int | None:
        """The signal to stop for, agreed by every process (the largest received), or None.

        One host-side all-gather per call when there are several processes, so every
        process leaves the training loop after the same step.
        """
        if process_count == 1:
            return self.signum
        from jax.experimental import multihost_utils

        mine = np.asarray(self.signum or 0, np.int32)
        got = int(np.max(multihost_utils.process_allgather(mine)))
        return got or None


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Catch SIGTERM and SIGINT for the duration of a stage; restore the old handlers."""
    request = StopRequest()
    previous = {s: signal.getsignal(s) for s in HANDLED}
    for s in HANDLED:
        signal.signal(s, request.handle)
    try:
        yield request
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
