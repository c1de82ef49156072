"""runtime.py: the compile watch that says "compiling kernels" only when numba really compiles."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_watch_fires_on_a_compile_and_not_on_a_cache_hit(tmp_path):
    """Two processes run one cached kernel: the first compiles it (the watch says so, once), the second
    loads it from numba's on-disk cache (the watch stays silent, but times the loading)."""
    (tmp_path / "kern.py").write_text(textwrap.dedent("""
        from numba import njit

        @njit(cache=True)
        def inner(x):
            return x * 2.0

        @njit(cache=True)
        def outer(x):
            return inner(x) + 1.0
    """))
    script = textwrap.dedent("""
        import json, sys
        sys.path.insert(0, sys.argv[1])
        from seqtool.runtime import watching_compiles
        said = []
        with watching_compiles(lambda: said.append(1)) as watch:
            import kern
            kern.outer(1.0)
            kern.outer(2.0)          # compiled already: nothing more
        print(json.dumps({"said": len(said), "compiled": watch.compiled, "seconds": watch.seconds}))
    """)
    env = dict(os.environ, PYTHONPATH=f"{REPO}", NUMBA_CACHE_DIR=str(tmp_path / "cache"))

    def once():
        out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, capture_output=True,
                             text=True, check=True).stdout
        return json.loads(out.splitlines()[-1])

    cold, warm = once(), once()
    assert (cold["said"], cold["compiled"]) == (1, True) and cold["seconds"] > 0
    assert (warm["said"], warm["compiled"]) == (0, False) and 0 < warm["seconds"] < cold["seconds"]


def test_the_clock_leaves_out_the_time_numba_spends():
    import time

    from numba import njit

    from seqtool.runtime import watching_compiles

    @njit
    def fresh(x):                    # not cached: compiled here
        return x + 1

    with watching_compiles() as watch:
        wall, clock = time.perf_counter(), watch.clock()
        fresh(1)
        wall, clock = time.perf_counter() - wall, watch.clock() - clock
    assert watch.compiled and watch.seconds > 0 and abs(clock - (wall - watch.seconds)) < 1e-3


def test_library_versions_come_from_the_package_metadata():
    from importlib.metadata import version

    from seqtool.runtime import library_versions

    v = library_versions()
    assert (v["numpy"], v["numba"]) == (version("numpy"), version("numba"))


def test_train_says_compiling_only_when_it_compiles(tmp_path, sample_data, monkeypatch):
    """The stage prints the line when the watch fires, and never when nothing compiles (a warm run)."""
    import contextlib

    from seqtool import runtime
    from seqtool.stages.train import run_train

    args = dict(epochs=1, hidden=4, embed=4, char_dim=2, char_filters=2, shape_dim=2, task="tagger")
    run_train(str(sample_data / "ner.jsonl"), output=str(tmp_path / "warmup"), progress=False, **args)
    real = runtime.watching_compiles

    @contextlib.contextmanager
    def compiling_first(on_first=None):
        with real(on_first) as watch:
            watch.compile_started()          # as numba's compile event does on a cold cache
            yield watch

    for name, watcher, expected in (("warm", real, False), ("cold", compiling_first, True)):
        monkeypatch.setattr(runtime, "watching_compiles", watcher)
        err = tmp_path / f"{name}.txt"
        with open(err, "w") as f, contextlib.redirect_stderr(f):
            run_train(str(sample_data / "ner.jsonl"), output=str(tmp_path / name), progress=None, **args)
        said = "seqtool train: compiling kernels (first run only, ~30 s)\n" in err.read_text()
        assert said is expected, name


def test_configure_shortens_the_idle_spin_of_kernel_threads_unless_the_user_chose(monkeypatch):
    from seqtool.runtime import SPIN_COUNT, configure

    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    configure(None)
    assert os.environ["GOMP_SPINCOUNT"] == SPIN_COUNT
    monkeypatch.setenv("GOMP_SPINCOUNT", "123")
    configure(None)
    assert os.environ["GOMP_SPINCOUNT"] == "123"
