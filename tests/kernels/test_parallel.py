"""Elementwise kernels built twice (kernels/parallel.py): both builds give the same bits, and the
small-array / one-thread cases take the serial one."""
import numba
import numpy as np
import pytest

from seqtool.kernels import elementwise as ks
from seqtool.kernels.parallel import SMALL_WORK, ElementwiseKernel
from seqtool.model import optim

KERNELS = {name: getattr(ks, name) for name in ("dropout_forward", "split_input", "join_output",
                                               "split_output_grad", "join_input_grad", "add_bias")}
KERNELS.update(adam_dense=optim._adam_dense, adam_rows=optim._adam_rows, sgd_dense=optim._sgd_dense,
               sgd_rows=optim._sgd_rows)


def arguments(name: str, dtype, rng) -> tuple:
    """Arguments for kernel ``name``, large enough that the parallel build really splits the work."""
    N, d = 3001, 7
    x = rng.standard_normal((N, d)).astype(dtype)
    rev = rng.permutation(N).astype(np.int64)
    flat = [rng.standard_normal(N * d).astype(dtype) for _ in range(4)]
    flat[3] = np.abs(flat[3])                                   # a second moment is never negative
    table = [a.reshape(N, d) for a in flat]
    rows = np.unique(rng.integers(0, N, 2000)).astype(np.int64)
    adam = np.array([0.9, 0.1, 0.999, 0.001, 1e-3, 0.7, 1e-8, 0.01], dtype=dtype)
    sgd = np.array([0.1, 0.9, 0.01], dtype=dtype)
    return {
        "dropout_forward": (x, np.uint64(11), np.uint64(0.3 * 2 ** 32), dtype(1 / 0.7)),
        "split_input": (x, rev),
        "join_output": (rng.standard_normal((2, N, d)).astype(dtype), rev),
        "split_output_grad": (rng.standard_normal((N, 2 * d)).astype(dtype), rev),
        "join_input_grad": (rng.standard_normal((2, N, d)).astype(dtype), rev),
        "add_bias": (rng.standard_normal((2, N, d)).astype(dtype), rng.standard_normal((2, d)).astype(dtype)),
        "adam_dense": (*flat, adam),
        "adam_rows": (*table, rows, adam),
        "sgd_dense": (flat[0], flat[1], flat[2], sgd, True),
        "sgd_rows": (table[0], table[1], table[2], rows, sgd, False),
    }[name]


def run(build, args: tuple):
    """The build's result and every argument array after the call (the updates work in place)."""
    args = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)
    out = build(*args)
    outs = out if isinstance(out, tuple) else (out,)
    return [o for o in outs if o is not None] + [a for a in args if isinstance(a, np.ndarray)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_the_parallel_and_serial_builds_give_the_same_bits(name, dtype):
    kernel = KERNELS[name]
    assert isinstance(kernel, ElementwiseKernel)
    args = arguments(name, dtype, np.random.default_rng(0))
    parallel, serial = run(kernel.parallel, args), run(kernel.serial, args)
    for p, s in zip(parallel, serial):
        assert p.dtype == s.dtype
        np.testing.assert_array_equal(p, s)


def test_small_arrays_and_one_thread_take_the_serial_build():
    kernel = optim._adam_dense
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    try:
        assert kernel.for_work(SMALL_WORK - 1) is kernel.serial
        expected = kernel.parallel if numba.get_num_threads() > 1 else kernel.serial
        assert kernel.for_work(SMALL_WORK) is expected
        numba.set_num_threads(1)
        assert kernel.for_work(10 * SMALL_WORK) is kernel.serial
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


def test_the_two_builds_are_cached_apart():
    # numba's cache is keyed on the file and the qualified name, not on parallel=True: one name for both
    # builds would let one load the other's machine code
    kernel = ks.add_bias
    assert kernel.serial.py_func.__qualname__ == kernel.parallel.py_func.__qualname__ + "_serial"
    assert kernel.serial.py_func is not kernel.parallel.py_func
    assert kernel.parallel.targetoptions.get("parallel") and not kernel.serial.targetoptions.get("parallel")
