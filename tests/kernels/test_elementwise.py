"""The step's parallel glue (kernels/elementwise.py): each kernel equals its numpy statement, gives the same bits
on one thread and on two, and dropout's counter-based mask keeps the right share, repeatably per key."""
import numba
import numpy as np
import pytest

from seqtool.kernels import elementwise as ks

TWO_THREADS = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="one core: nothing to compare")


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    N = 37
    return dict(rng=rng, rev=rng.permutation(N).astype(np.int64), x=rng.normal(size=(N, 11)).astype(np.float32),
                h=rng.normal(size=(2, N, 6)).astype(np.float32), dy=rng.normal(size=(N, 12)).astype(np.float32),
                xp=rng.normal(size=(2, N, 70)).astype(np.float32), b=rng.normal(size=(2, 70)).astype(np.float32))


def on_threads(threads, fn, *args):
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        return fn(*args)
    finally:
        numba.set_num_threads(before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stream_moves_equal_their_numpy_statements(arrays, dtype):
    rev = arrays["rev"]
    x, h, dy = (arrays[k].astype(dtype) for k in ("x", "h", "dy"))
    np.testing.assert_array_equal(ks.split_input(x, rev), np.stack([x, x[rev]]))
    np.testing.assert_array_equal(ks.join_output(h, rev), np.concatenate([h[0], h[1][rev]], axis=1))
    np.testing.assert_array_equal(ks.split_output_grad(dy, rev), np.stack([dy[:, :6], dy[rev, 6:]]))
    dxs = np.stack([x, 2 * x])
    np.testing.assert_array_equal(ks.join_input_grad(dxs, rev), x + 2 * x[rev])
    assert ks.split_input(x, rev).dtype == dtype


def test_bias_and_column_sums_equal_numpy(arrays):
    xp, b = arrays["xp"].copy(), arrays["b"]
    expected = xp + b[:, None, :]
    ks.add_bias(xp, b)
    np.testing.assert_array_equal(xp, expected)
    wide = arrays["rng"].normal(size=(2, 301, 70))            # 70 columns: two full blocks and a partial one
    np.testing.assert_allclose(ks.column_sums(wide), wide.sum(axis=1), rtol=1e-12, atol=1e-12)


@TWO_THREADS
def test_glue_gives_the_same_bits_on_one_thread_and_on_two(arrays):
    rng = arrays["rng"]
    big = rng.normal(size=(2, 2000, 96)).astype(np.float32)
    np.testing.assert_array_equal(on_threads(1, ks.column_sums, big), on_threads(2, ks.column_sums, big))
    x = rng.normal(size=(2000, 40)).astype(np.float32)
    key, cut, scale = np.uint64(12345), np.uint64(0.3 * 2 ** 32), np.float32(1 / 0.7)
    y1, m1 = on_threads(1, ks.dropout_forward, x, key, cut, scale)
    y2, m2 = on_threads(2, ks.dropout_forward, x, key, cut, scale)
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_mask_keeps_one_minus_p_of_the_entries_at_scale(p):
    x = np.ones((500, 200), np.float32)
    scale = np.float32(1 / (1 - p))
    y, mask = ks.dropout_forward(x, np.uint64(7), np.uint64(p * 2 ** 32), scale)
    assert set(np.unique(mask)) == {0.0, scale}
    kept = (mask > 0).mean()
    sigma = np.sqrt(p * (1 - p) / mask.size)
    assert abs(kept - (1 - p)) < 5 * sigma
    np.testing.assert_array_equal(y, x * mask)
    # rows and columns alike: no stripe of the matrix always dropped or always kept
    assert np.abs((mask > 0).mean(axis=0) - (1 - p)).max() < 6 * np.sqrt(p * (1 - p) / 500)


def test_dropout_mask_is_a_function_of_the_key():
    x = np.ones((64, 64), np.float32)
    args = (np.uint64(0.5 * 2 ** 32), np.float32(2.0))
    _, a = ks.dropout_forward(x, np.uint64(1), *args)
    _, again = ks.dropout_forward(x, np.uint64(1), *args)
    _, other = ks.dropout_forward(x, np.uint64(2), *args)
    np.testing.assert_array_equal(a, again)
    assert 0.4 < (a != other).mean() < 0.6                  # independent masks differ in about half the entries
