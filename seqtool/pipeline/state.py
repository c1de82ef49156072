"""What a pipeline keeps between runs: step fingerprints, the lock, the run log.

All three live in the state directory, named after the pipeline file (NAME):

    NAME.state.json   per step: the key of its last successful run and the
                      fingerprints of what it wrote (written atomically after each step)
    NAME.lock         fcntl.flock'ed for the whole run; holds the running pid
    NAME.log.jsonl    one JSON line per event, appended (the ``log:`` key can move it)

A step's key is the SHA-256 of its stage, options (paths made absolute), the
seqtool version and the content fingerprints (modelio.data_fingerprint) of
everything it reads. A step is skipped when its key is the one recorded and
what it wrote is still there, byte for byte.
"""
import fcntl
import hashlib
import json
import os
import sys
from contextlib import contextmanager
from datetime import datetime

from seqtool import __version__
from seqtool.errors import LockedError
from seqtool.data.jsonl import replacing
from seqtool.model.modelio import data_fingerprint
from seqtool.pipeline.spec import PATH_KEYS

STATE_VERSION = 1


def fingerprint(path: str) -> str | None:
    """Content fingerprint of a file or a directory's files (names and bytes); None if absent."""
    if os.path.isdir(path):
        h = hashlib.sha256()
        for name in sorted(os.listdir(path)):
            full = os.path.join(path, name)
            if os.path.isfile(full):
                h.update(f"{name}\0{data_fingerprint(full)}\0".encode())
        return "sha256:" + h.hexdigest()
    if not os.path.exists(path):
        return None
    return data_fingerprint(path)


def step_key(step) -> str:
    """The key of running ``step`` now: stage, options, version and the fingerprints of its inputs."""
    options = {k: _absolute(v) if k in PATH_KEYS else v for k, v in step.options.items()}
    doc = {"stage": step.stage, "options": options, "version": __version__,
           "sink": os.path.abspath(step.sink) if step.sink else None,
           "inputs": {k: fingerprint(p) for k, p in sorted(step.inputs.items())}}
    return "sha256:" + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _absolute(value):
    return [os.path.abspath(v) for v in value] if isinstance(value, list) else os.path.abspath(value)


class State:
    """The state file: the last successful run of every step."""

    def __init__(self, path: str):
        self.path = path
        self.steps: dict = {}
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            if doc.get("format_version") == STATE_VERSION:
                self.steps = doc["steps"]
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, AttributeError) as e:
            print(f"seqtool run: {path}: unreadable state ({e}); every step will run", file=sys.stderr)

    def unchanged(self, step, key: str) -> bool:
        """True when ``step`` ran with ``key`` and its outputs are as it left them."""
        done = self.steps.get(step.name)
        if not done or done.get("key") != key:
            return False
        return all(fingerprint(p) == fp for p, fp in done.get("outputs", {}).items())

    def why(self, step, key: str) -> str:
        """Why ``step`` runs (for the log and --dry-run)."""
        done = self.steps.get(step.name)
        if not done:
            return "never ran"
        if done.get("key") != key:
            return "inputs or options changed"
        return "its output changed"

    def record(self, step, key: str, **info) -> None:
        outputs = {os.path.abspath(p): fingerprint(p) for p in step.outputs}
        self.steps[step.name] = {"key": key, "outputs": outputs, **info}
        self.save()

    def forget(self, step) -> None:
        if self.steps.pop(step.name, None) is not None:
            self.save()

    def save(self) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        text = json.dumps({"format_version": STATE_VERSION, "steps": self.steps}, indent=1, sort_keys=True)
        with replacing(self.path, f"{self.path}.tmp-{os.getpid()}") as f:
            f.write((text + "\n").encode("utf-8"))


@contextmanager
def locked(path: str, wait: bool = False, on_wait=None):
    """Hold an exclusive flock on ``path`` (our pid written in it) for the ``with`` block.

    Held by another process: LockedError naming its pid, or with ``wait`` block
    until it is free (``on_wait(pid)`` is called first). The kernel drops the
    lock when the holder dies, even by kill -9: a stale file never blocks.
    """
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            if not wait:
                raise LockedError(f"another run of this pipeline holds the lock (pid {holder}); "
                                  "try again later, or use --wait", path) from None
            if on_wait:
                on_wait(holder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock; the file stays (unlinking a lock file races)


class RunLog:
    """The JSONL run log: one line per event, appended with one write each."""

    def __init__(self, path: str | None):
        self.path = path

    def __call__(self, event: str, **fields) -> None:
        if self.path is None:
            return
        line = {"time": datetime.now().astimezone().isoformat(timespec="milliseconds"), "pid": os.getpid(),
                "event": event, **fields}
        data = (json.dumps(line, default=_plain, ensure_ascii=False) + "\n").encode()
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


def _plain(obj):
    if hasattr(obj, "item"):   # numpy scalars
        return obj.item()
    return str(obj)
