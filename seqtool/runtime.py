"""Process-wide numeric settings: thread count and the numba compile cache."""
import os


def configure(threads: int | None = None) -> None:
    """Set the kernels' thread count (None: numba's default, all cores).

    Imports numba, so call it from inside a command, never at import time.
    """
    _ensure_cache_dir()
    if threads:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def _ensure_cache_dir() -> None:
    """Compiled kernels are cached so a second process does not recompile.

    Numba writes next to the sources when it can and otherwise falls back to a
    user-wide cache; NUMBA_CACHE_DIR, when set by the user, wins.
    """
    if "NUMBA_CACHE_DIR" in os.environ:
        return
    pkg = os.path.dirname(os.path.abspath(__file__))
    if not os.access(pkg, os.W_OK):
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        os.environ["NUMBA_CACHE_DIR"] = os.path.join(base, "seqtool", "numba")
