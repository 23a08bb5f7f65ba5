"""Stopping a run on SIGTERM or SIGINT (a scheduler's pre-emption, Ctrl+C) without losing what was written.

Lightning 2.6 handles SIGTERM inside ``trainer.fit`` / ``trainer.test``: its handler only sets
``trainer.received_sigterm``, and the loops raise ``SIGTERMException`` at the next batch boundary, so a
checkpoint being written is always finished. But that exception is a ``SystemExit`` with status 0, so a
pre-empted run looked successful, and a signal outside the loops (data set-up, between training and
scoring) killed the process at once. :class:`SignalGuard` builds on Lightning's mechanism:

- inside a running trainer, SIGTERM and SIGINT both set Lightning's flag (SIGINT too, so Ctrl+C never cuts
  ``last.ckpt`` in half; a second Ctrl+C interrupts at once);
- outside it, they raise :class:`SignalReceived` where the program is.

The commands turn either into :class:`RunInterrupted`: one line saying how to resume, and exit status
128 + the signal number (143 for SIGTERM, 130 for SIGINT), as a shell reports a process killed by it.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator, Optional

from lightning.pytorch import Callback
from lightning.pytorch.trainer.states import TrainerStatus
from lightning.pytorch.utilities.exceptions import SIGTERMException

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class SignalReceived(BaseException):
    """SIGTERM / SIGINT arrived while no trainer loop was running (a BaseException, like KeyboardInterrupt,
    so that no ``except Exception`` swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class RunInterrupted(Exception):
    """A run stopped by a signal; the message says what was kept and the command that resumes it."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class SignalGuard(Callback):
    """SIGTERM / SIGINT handling of one command (see the module docstring). As a trainer callback it
    re-asserts a signal that arrived while a trainer was starting (Lightning resets its flag when it
    registers its own handler)."""

    def __init__(self):
        self.signum: Optional[int] = None
        self.trainer = None

    def watch(self, trainer) -> None:
        """From now on, signals during ``trainer``'s loops stop it at the next batch boundary."""
        self.trainer = trainer
        if self not in trainer.callbacks:
            trainer.callbacks.append(self)

    def _stop_trainer(self) -> None:
        # the flag behind trainer.received_sigterm, which Lightning's loops check after every batch
        self.trainer._signal_connector.received_sigterm = True

    def handle(self, signum: int, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl+C: stop now
        if self.signum is None:
            self.signum = signum
        if self.trainer is not None and self.trainer.state.status == TrainerStatus.RUNNING:
            self._stop_trainer()
        else:
            raise SignalReceived(signum)

    def _reassert(self, trainer) -> None:
        if self.signum is not None:
            self._stop_trainer()

    def on_train_start(self, trainer, pl_module) -> None:
        self._reassert(trainer)

    def on_test_start(self, trainer, pl_module) -> None:
        self._reassert(trainer)

    def interrupted(self, what: str) -> RunInterrupted:
        """``RunInterrupted("interrupted by <signal> <what>")`` for the signal received (SIGTERM when Lightning's
        own handler caught it without this guard)."""
        signum = int(self.signum or signal.SIGTERM)
        return RunInterrupted(signum, f"interrupted by {signal.Signals(signum).name} {what}")


INTERRUPTIONS = (SIGTERMException, SignalReceived)


@contextmanager
def stop_on_signals() -> Iterator[SignalGuard]:
    """Install a :class:`SignalGuard` for SIGTERM and SIGINT for the duration (main thread only; elsewhere
    the guard is inert and Lightning's own SIGTERM handling still applies); the previous handlers come back
    after."""
    guard = SignalGuard()
    if threading.current_thread() is not threading.main_thread():
        yield guard
        return
    previous = {s: signal.signal(s, guard.handle) for s in SIGNALS}
    try:
        yield guard
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def resume_command(prog: str, argv: list[str], ckpt_path: Optional[str] = None) -> str:
    """``python -m <prog> <argv>`` as a shell line, with any ``--ckpt_path`` / ``--run_dir`` of ``argv`` dropped
    (a resumed run writes a new folder) and ``--ckpt_path <ckpt_path>`` appended when given."""
    import shlex

    kept, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--ckpt_path", "--run_dir"):
            skip = True
        elif not a.startswith(("--ckpt_path=", "--run_dir=")):
            kept.append(a)
    if ckpt_path is not None:
        kept += ["--ckpt_path", str(ckpt_path)]
    return shlex.join(["python", "-m", prog, *kept])
