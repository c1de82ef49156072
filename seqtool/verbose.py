"""``-v/--verbose``: what a command did and how long each phase took, on stderr; silent by default.

Library code logs to the ``seqtool`` logger (``log.info``) and times phases with ``phase(name)``;
nothing is printed unless the command line asked for it (``enable``). At the end of a command
``kernel_status`` says which numeric path ran, with how many threads, and whether each numba
kernel came from the on-disk cache or was compiled by this run (the ~30 s a first run spends).
"""
import logging
import os
import sys
import time
import types
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger("seqtool")
log.propagate = False                      # ours alone: an application's root handlers do not print it twice


class _Stderr(logging.Handler):
    """One line per message on the *current* sys.stderr (a test runner swaps it per call)."""

    prefix = "seqtool: "

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(f"{self.prefix}{record.getMessage()}\n")


_handler = _Stderr()
log.addHandler(_handler)
log.setLevel(logging.WARNING)


def enable(verbosity: int, prefix: str = "seqtool: ") -> None:
    """Print info messages from now on when ``verbosity`` >= 1 (debug ones too at 2), else nothing."""
    _handler.prefix = prefix
    log.setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO if verbosity >= 1 else logging.WARNING)


def enabled() -> bool:
    return log.isEnabledFor(logging.INFO)


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Log how long the ``with`` body took, as ``NAME: 0.42 s`` (only when verbose)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        if enabled():
            log.info("%s: %.2f s", name, time.perf_counter() - start)


def kernel_status() -> str:
    """Which numeric path ran: numpy only, or numba's kernels (threads, threading layer, cache hits)."""
    numba = sys.modules.get("numba")
    if numba is None or not isinstance(numba, types.ModuleType) or not hasattr(numba, "get_num_threads"):
        return "kernels: not used (numba not imported: numpy path or no numeric work)"
    cached, compiled = _kernel_counts()
    try:
        layer = numba.threading_layer()
    except ValueError:                     # no parallel kernel ran
        layer = "not started"
    cache = os.environ.get("NUMBA_CACHE_DIR") or "beside the sources (__pycache__)"
    return (f"kernels: {numba.get_num_threads()} of {numba.config.NUMBA_NUM_THREADS} threads, threading layer "
            f"{layer}; {cached} loaded from the cache, {compiled} compiled by this run (cache: {cache})")


def _kernel_counts() -> tuple[int, int]:
    """(kernel signatures loaded from numba's cache, signatures compiled now) over the loaded kernel modules."""
    from numba.core.dispatcher import Dispatcher

    kernels = {}                           # by id: a kernel imported into another module counts once
    for name, module in list(sys.modules.items()):
        # A module still lazy (kernels.lazy) has run no kernel; touching it would import it.
        if name.startswith("seqtool.kernels.") and type(module) is types.ModuleType:
            kernels.update((id(v), v) for v in vars(module).values() if isinstance(v, Dispatcher))
    cached = sum(sum(k.stats.cache_hits.values()) for k in kernels.values())
    return cached, sum(len(k.signatures) for k in kernels.values()) - cached
