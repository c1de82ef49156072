"""Elementwise ``prange`` kernels built twice: parallel for large arrays, serial for small ones.

A parallel region wakes the kernel threads, which have gone to sleep when the step spent a few
microseconds elsewhere (tens of microseconds here); for an array of tens of thousands of entries
the wake-up costs more than the loop. A small model shows it: a word-averaging classifier's step
was 17% slower on two threads than on one, its dropout (38k entries: 0.047 ms serial, 0.095 ms
parallel) and optimiser being such arrays (benchmarks/profile_step.py). So each
kernel here has a serial build of the same source (``prange`` runs as ``range``), taken on one
thread or below SMALL_WORK entries. Only kernels whose iterations own their writes and do not
reduce belong here: the two builds then give the same bits (tests/kernels/test_parallel.py), and
results do not depend on the thread count. ``worth_parallel`` is the one rule for choosing a parallel
driver, here and in the kernels that write their two drivers by hand (crf.py, chars.py).
"""
import types

import numba
from numba import njit

SMALL_WORK = 65536      # entries: below this the serial build is faster in a training step here


class ElementwiseKernel:
    """``fn`` compiled with parallel=True and without. A call runs the build that suits the size of
    its first argument; ``for_work(n)`` is the build for n entries (when the first argument is not
    what the loop covers, e.g. a table of which a few rows are updated)."""

    def __init__(self, fn, **options):
        self.parallel = njit(parallel=True, **options)(fn)
        self.serial = njit(**options)(_renamed(fn, "_serial"))
        self.__doc__ = fn.__doc__

    def __call__(self, *args):
        return self.for_work(args[0].size)(*args)

    def for_work(self, work: int):
        return self.parallel if worth_parallel(work, SMALL_WORK) else self.serial


def worth_parallel(work: int, threshold: int) -> bool:
    """Whether a kernel with a parallel and a serial driver should run the parallel one: ``work`` (in the
    kernel's own unit) reaches its ``threshold`` and the calling thread has more than one kernel thread
    (on one, a thread team is pure overhead: tag's workers run one chunk per core)."""
    return work >= threshold and numba.get_num_threads() > 1


def elementwise(**options):
    """Decorator: an ElementwiseKernel with numba ``options`` (no ``parallel``: both builds are made)."""
    return lambda fn: ElementwiseKernel(fn, **options)


def _renamed(fn, suffix: str):
    """A copy of function ``fn`` under another qualified name, so numba's on-disk cache (keyed on the
    file and the qualified name, not on the options) keeps the two builds apart."""
    copy = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix, fn.__defaults__, fn.__closure__)
    copy.__qualname__ = fn.__qualname__ + suffix
    copy.__module__ = fn.__module__
    copy.__doc__ = fn.__doc__
    return copy
