"""Elementwise ``prange`` kernels built twice: parallel for large arrays, serial for small ones.

A parallel region wakes the kernel threads, which have gone to sleep when the step spent a few
microseconds elsewhere (tens of microseconds here); for an array of tens of thousands of entries
the wake-up costs more than the loop. A small model shows it: a word-averaging classifier's step
was 17% slower on two threads than on one, its dropout (38k entries: 0.047 ms serial, 0.095 ms
parallel) and optimiser being such arrays (benchmarks/profile_step.py). So each
kernel here has a serial build of the same source (``prange`` runs as ``range``), taken on one
thread or below SMALL_WORK entries. Only kernels whose iterations own their writes and do not
reduce belong here: the two builds then give the same bits (tests/kernels/test_parallel.py), and
results do not depend on the thread count.
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
        if work < SMALL_WORK or numba.get_num_threads() == 1:
            return self.serial
        return self.parallel


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
