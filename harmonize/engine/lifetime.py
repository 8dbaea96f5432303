"""How long processes live: pool workers die with the process that started them, and SIGTERM
unwinds a command like Ctrl-C does (``finally`` blocks run, temporary files are removed).

:func:`die_with_parent` is the initializer of every process pool: on Linux the kernel sends the
worker SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``), and everywhere a watchdog thread
ends the worker within :data:`WATCHDOG_SECONDS` of the parent's death (macOS has no ``prctl``).
Workers ignore SIGINT: on Ctrl-C the parent stops them (``Executor.abort``), so they print no
traceback of their own. :func:`sigterm_raises` turns SIGTERM into :class:`Terminated`, a
``KeyboardInterrupt``, so every handler of Ctrl-C also handles it; commands exit 130 for SIGINT
and 143 for SIGTERM (128 + the signal number, as a shell reports a process killed by it).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from harmonize.files import pid_alive

#: How often a worker's watchdog checks that its parent is alive.
WATCHDOG_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (raised in the main thread by :func:`sigterm_raises`)."""


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """143 for SIGTERM, 130 for SIGINT (Ctrl-C)."""
    return 128 + (signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Raise :class:`Terminated` in the main thread on SIGTERM inside the block (elsewhere, or
    off the main thread, nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _watch(parent: int) -> None:
    ppid = os.getppid()
    while True:
        time.sleep(WATCHDOG_SECONDS)
        if os.getppid() != ppid or not pid_alive(parent):
            os.kill(os.getpid(), signal.SIGKILL)


def die_with_parent(parent: int) -> None:
    """Pool worker initializer: end this worker when process ``parent`` (the pool's owner) dies;
    ignore SIGINT (the parent handles Ctrl-C)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # no usable libc: the watchdog still works
    if not pid_alive(parent):  # died before prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=_watch, args=(parent,), name="harmonize-watchdog", daemon=True).start()
