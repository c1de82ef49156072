"""Process-wide numeric settings: thread count, how idle kernel threads wait, the numba compile cache."""
import os
from contextlib import contextmanager

# How long an idle kernel thread (numba's OpenMP pool) spins before it sleeps, in spin iterations. The
# default (300,000, about a millisecond) keeps the second core busy spinning while the next numpy product
# of a training step runs on it (recurrent.stream_matmul), which made those products no faster on two
# threads than on one; passive waiting (0) makes each of the ~40 short parallel regions of a step pay a
# wake-up. 10,000 (some microseconds) keeps back-to-back regions hot and frees the core between them
# (benchmarks/profile_step.py: a default tagger step 12.8 -> 11.4 ms on 2 threads). Read by libgomp when
# numba loads it, at the first parallel kernel, so it must be set before that; a user's setting wins.
SPIN_COUNT = "10000"


def configure(threads: int | None = None) -> None:
    """Set the kernels' thread count (None: numba's default, all cores) and how idle kernel threads wait.

    Imports numba, so call it from inside a command, never at import time.
    """
    os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)
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


def library_versions() -> dict:
    """The versions of the libraries the numbers depend on, read from the installed packages' metadata
    (importlib.metadata: neither numpy nor numba is imported, which would cost ~0.5 s)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("numpy", "numba"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    out["python"] = platform.python_version()
    return out


class CompileWatch:
    """What numba does before a kernel can run, while installed (``watching_compiles``).

    numba fires "numba:compile" only on a real compile, after its on-disk cache had
    nothing that fits (Dispatcher.compile tries the cache first), so ``on_first``
    runs only when something is compiled and a warm cache costs nothing here. The
    time is that of "numba:compiler_lock", held while a kernel is loaded from the
    cache or compiled: ``seconds`` and ``clock`` leave it out of training speeds.
    """

    def __init__(self, on_first=None):
        self.seconds = 0.0            # time spent loading or compiling kernels so far
        self.on_first = on_first
        self.compiled = False         # whether anything was compiled (not only loaded from the cache)
        self._depth, self._since = 0, 0.0

    def compile_started(self) -> None:
        if not self.compiled and self.on_first is not None:
            self.on_first()
        self.compiled = True

    def lock_taken(self) -> None:
        import time

        if self._depth == 0:          # the lock is re-entrant: compiling a kernel compiles its callees
            self._since = time.perf_counter()
        self._depth += 1

    def lock_released(self) -> None:
        import time

        self._depth -= 1
        if self._depth == 0:
            self.seconds += time.perf_counter() - self._since

    def clock(self) -> float:
        """time.perf_counter() with the kernel loading and compiling left out (the stopwatch of tokens/s)."""
        import time

        now = time.perf_counter()
        return now - self.seconds - (now - self._since if self._depth else 0.0)


@contextmanager
def watching_compiles(on_first=None):
    """Installs a CompileWatch on numba's events while inside; yields it."""
    from numba.core import event

    watch = CompileWatch(on_first)

    class Hook(event.Listener):
        def __init__(self, start, end=None):
            self.start, self.end = start, end

        def on_start(self, ev):
            self.start()

        def on_end(self, ev):
            if self.end is not None:
                self.end()

    with event.install_listener("numba:compile", Hook(watch.compile_started)), \
            event.install_listener("numba:compiler_lock", Hook(watch.lock_taken, watch.lock_released)):
        yield watch
