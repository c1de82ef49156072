"""Model and checkpoint directories: written atomically, read back with checks.

A model is a directory: config.json (hyper-parameters, task, architecture, seed,
data fingerprint; save_model adds format_version and seqtool_version), weights.npz
(bool/int/float arrays, loaded with allow_pickle=False), vocab.json, metrics.json.
A checkpoint (--resume) is state.json (the state, each array in it replaced by
{"$array": key}) and arrays.npz.

Atomic replacement. A save builds the whole new directory in a hidden sibling
.NAME.tmp-PID-RANDOM, fsyncs every file and the directory, then swaps it in:
- PATH absent: rename(2) moves it into place.
- PATH present, on Linux: renameat2(RENAME_EXCHANGE) swaps the two directories in
  one step, so PATH is a complete model, old or new, at every instant, for readers
  and after a kill -9 anywhere. The old one, now at the temporary name, is removed
  or kept as NAME.prev (swapped in the same way).
- PATH present, no exchange (not Linux, or a file system without it): PATH is
  renamed to .NAME.old-PID-RANDOM, then the new directory to PATH. Between the two
  renames PATH is absent; a save killed there leaves the old model whole in the
  .old- sibling, which the next save puts back first and load_model's error names.
Not a symlink (NAME -> NAME.v7, one atomic rename anywhere): a model must stay a
plain directory that cp -r, tar and rm -r treat as one thing.

Each save first removes the .tmp-/.old- siblings of dead processes (killed saves).
Readers open the directory once and each file relative to it, so a load never
mixes the files of two models, even during a save.
"""
import ctypes
import errno
import functools
import glob
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
import zipfile
from collections.abc import Iterable

import numpy as np

from seqtool import __version__
from seqtool.errors import DataError, SeqtoolError, UsageError

FORMAT_VERSION = 1
MODEL_FILES = ("config.json", "weights.npz", "vocab.json", "metrics.json")
CHECKPOINT_FILES = ("state.json", "arrays.npz")
_ARRAY_REF = "$array"
_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integer, float


# ---------------------------------------------------------------- public API

def save_model(path, config: dict, weights: dict, vocab: dict, metrics: dict, *,
               keep_previous: bool = False) -> None:
    """Write the model directory at ``path`` atomically (see the module doc); ``keep_previous``
    keeps the model it replaces as ``<path>.prev``."""
    config = {**config, "format_version": FORMAT_VERSION, "seqtool_version": __version__}
    files = {"config.json": _json_bytes(config, "config"),
             "weights.npz": _check_arrays(weights, "weight"),
             "vocab.json": _json_bytes(vocab, "vocab"),
             "metrics.json": _json_bytes(metrics, "metrics")}
    _save_dir(path, files, "model", keep_previous)


def load_model(path) -> tuple[dict, dict, dict, dict]:
    """(config, weights, vocab, metrics) of the model directory at ``path``, checked."""
    files = _load_dir(path, MODEL_FILES, "model")
    return tuple(files[name] for name in MODEL_FILES)


def save_checkpoint(path, state: dict) -> None:
    """Write a resumable training state atomically: JSON values (string keys), numpy arrays anywhere in it."""
    arrays = {}
    doc = {"format_version": FORMAT_VERSION, "seqtool_version": __version__,
           "state": _extract_arrays(state, arrays)}
    files = {"state.json": _json_bytes(doc, "checkpoint state"), "arrays.npz": _check_arrays(arrays, "array")}
    _save_dir(path, files, "checkpoint", keep_previous=False)


def load_checkpoint(path) -> dict:
    """The state that save_checkpoint wrote (tuples come back as lists)."""
    files = _load_dir(path, CHECKPOINT_FILES, "checkpoint")
    try:
        return _restore_arrays(files["state.json"]["state"], files["arrays.npz"])
    except KeyError as e:
        raise SeqtoolError(f"refers to a missing array {e}: the checkpoint is damaged",
                           os.path.join(os.fspath(path), "state.json")) from None


def data_fingerprint(paths=(), *, lines: Iterable[str | bytes] | None = None) -> str:
    """``sha256:<hex>`` of the data's bytes, read in chunks (flat memory).

    ``paths``: one path or several; their contents count as one concatenated stream,
    so ``cat a b | ...`` and ``a b`` agree. ``lines``: strings (as UTF-8) or bytes,
    hashed as given with nothing added: lines that keep their newlines, as
    iterating a file yields them, give the file's fingerprint.
    """
    h = hashlib.sha256()
    if lines is not None:
        if paths:
            raise ValueError("give paths or lines, not both")
        for line in lines:
            h.update(line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line)
        return "sha256:" + h.hexdigest()
    for p in [paths] if isinstance(paths, (str, os.PathLike)) else paths:
        try:
            with open(p, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
        except OSError as e:
            raise DataError(f"cannot read: {e.strerror}", os.fspath(p)) from None
    return "sha256:" + h.hexdigest()


# ---------------------------------------------------------------- encoding

def _json_default(obj):
    if isinstance(obj, np.generic):  # np.float32(0.5), np.int64(3): as Python numbers
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _json_bytes(obj, what: str) -> bytes:
    try:
        text = json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default)
    except (TypeError, ValueError) as e:
        raise SeqtoolError(f"cannot save the {what} as JSON: {e}") from None
    return (text + "\n").encode("utf-8")


def _check_arrays(arrays: dict, what: str, where: str | None = None) -> dict:
    """Numeric ndarrays by name; anything else (object, string arrays) could not load without pickle."""
    out = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not name:
            raise SeqtoolError(f"{what} names must be non-empty strings, not {name!r}", where)
        arr = np.asarray(value)
        if arr.dtype.kind not in _NUMERIC_KINDS:
            raise SeqtoolError(f"{what} {name!r} has dtype {arr.dtype}: only bool, integer and float arrays "
                               "can be stored (they are loaded with allow_pickle=False)", where)
        out[name] = arr
    return out


def _write_npz(f, arrays: dict) -> None:
    # The .npz layout np.savez writes (one NAME.npy member per array, stored), written
    # here because np.savez(f, **arrays) breaks on arrays named "file" or "allow_pickle".
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)


def _extract_arrays(obj, arrays: dict):
    """A JSON-able copy of ``obj`` with each ndarray moved into ``arrays`` and replaced by a reference."""
    if isinstance(obj, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = obj
        return {_ARRAY_REF: key}
    if isinstance(obj, dict):
        for k in obj:
            if not isinstance(k, str) or k == _ARRAY_REF:
                raise SeqtoolError(f"checkpoint state keys must be strings other than {_ARRAY_REF!r}, not {k!r}")
        return {k: _extract_arrays(v, arrays) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_extract_arrays(v, arrays) for v in obj]
    return obj


def _restore_arrays(obj, arrays: dict):
    if isinstance(obj, dict):
        if set(obj) == {_ARRAY_REF}:
            return arrays[obj[_ARRAY_REF]]
        return {k: _restore_arrays(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_restore_arrays(v, arrays) for v in obj]
    return obj


# ---------------------------------------------------------------- reading

def _load_dir(path, names: tuple, kind: str) -> dict:
    """Each file of the directory parsed (.json or .npz); the first holds format_version, checked first."""
    path = os.fspath(path)
    files = _open_snapshot(path, names, kind)
    out = {}
    try:
        for name, f in files.items():
            out[name] = _npz_load(f, path, name) if name.endswith(".npz") else _json_load(f, path, name)
            if name == names[0]:
                _check_version(out[name], path, name, kind)
    finally:
        for f in files.values():
            f.close()
    return out


def _open_snapshot(path: str, names: tuple, kind: str) -> dict:
    """Open every file of the directory as one version: the directory first, then each file in it.

    A save that swaps PATH meanwhile cannot mix versions; if it removed the old
    version's files before they were opened, try again on the new version.
    """
    for _ in range(5):
        try:
            dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            raise SeqtoolError(f"no such {kind} directory{_backup_hint(path)}", path) from None
        except NotADirectoryError:
            raise SeqtoolError(f"not a {kind} directory", path) from None
        except OSError as e:
            raise SeqtoolError(f"cannot open: {e.strerror}", path) from None
        files = {}
        try:
            for name in names:
                files[name] = os.fdopen(os.open(name, os.O_RDONLY, dir_fd=dfd), "rb")
            return files
        except OSError as e:
            for f in files.values():
                f.close()
            if not (isinstance(e, FileNotFoundError) and _was_replaced(path, dfd)):
                what = f"missing: the {kind} is incomplete" if isinstance(e, FileNotFoundError) \
                    else f"cannot open: {e.strerror}"
                raise SeqtoolError(what, os.path.join(path, name)) from None
        finally:
            os.close(dfd)
    raise SeqtoolError("kept changing while being read (is a save looping?)", path)


def _was_replaced(path: str, dfd: int) -> bool:
    try:
        now = os.stat(path)
    except OSError:
        return True
    then = os.fstat(dfd)
    return (now.st_dev, now.st_ino) != (then.st_dev, then.st_ino)


def _backup_hint(path: str) -> str:
    parent, name = os.path.split(os.path.abspath(path))
    olds = glob.glob(os.path.join(glob.escape(parent), f".{glob.escape(name)}.old-*"))
    if not olds:
        return ""
    return f" (an interrupted save left the previous one at {olds[0]}: rename it back, or save again)"


def _json_load(f, path: str, name: str):
    try:
        return json.loads(f.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise SeqtoolError(f"not valid JSON ({e})", os.path.join(path, name)) from None


def _check_version(doc, path: str, name: str, kind: str) -> None:
    where = os.path.join(path, name)
    version = doc.get("format_version") if isinstance(doc, dict) else None
    if version is None:
        raise SeqtoolError(f"no format_version: not a seqtool {kind}", where)
    if type(version) is int and version == FORMAT_VERSION:
        return
    newer = type(version) is int and version > FORMAT_VERSION
    advice = (f"upgrade seqtool to one that reads version {version}, or retrain the {kind} with this one"
              if newer else f"retrain the {kind} with this seqtool")
    writer = doc.get("seqtool_version")
    written = f" (written by seqtool {writer})" if isinstance(writer, str) else ""
    raise SeqtoolError(f"{kind} format_version is {version!r}{written}, but this seqtool ({__version__}) "
                       f"reads format_version {FORMAT_VERSION}: {advice}", where)


def _npz_load(f, path: str, name: str) -> dict:
    where = os.path.join(path, name)
    try:
        npz = np.load(f, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise SeqtoolError(f"cannot read the arrays: {e}", where) from None
    return _check_arrays(arrays, "array", where)


# ---------------------------------------------------------------- atomic writing

def _save_dir(path, files: dict, kind: str, keep_previous: bool) -> None:
    """Build ``files`` (name -> bytes, or name -> arrays for .npz) in a temp sibling and swap it in at path."""
    path = os.path.realpath(os.fspath(path))
    allowed = MODEL_FILES if kind == "model" else CHECKPOINT_FILES
    _refuse_foreign(path, allowed, kind)
    if keep_previous:
        _refuse_foreign(path + ".prev", allowed, kind)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    _tidy(path)
    _tidy(path + ".prev")
    tmp = _sibling(path, "tmp")
    os.mkdir(tmp)
    try:
        for fname, content in files.items():
            _write_file(os.path.join(tmp, fname), content)
        _fsync_dir(tmp)
        old = _swap_in(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None and keep_previous:
        old = _swap_in(old, path + ".prev")
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _refuse_foreign(path: str, allowed: tuple, kind: str) -> None:
    """Only a seqtool directory of this kind may be replaced: never delete someone's other files."""
    if not os.path.lexists(path):
        return
    if not os.path.isdir(path):
        raise UsageError(f"exists and is not a {kind} directory; refusing to replace it", path)
    foreign = sorted(set(os.listdir(path)) - set(allowed))
    if foreign:
        raise UsageError(f"holds {foreign[0]!r}, which is not part of a seqtool {kind}; refusing to replace "
                         "it (choose another path, or remove it)", path)


def _write_file(fpath: str, content) -> None:
    with open(fpath, "xb") as f:
        if isinstance(content, bytes):
            f.write(content)
        else:
            _write_npz(f, content)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sibling(path: str, tag: str) -> str:
    parent, name = os.path.split(path)
    return os.path.join(parent, f".{name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}")


def _swap_in(src: str, dst: str) -> str | None:
    """Put the complete directory ``src`` at ``dst``; return where dst's old directory went (None if none).

    The swap is made durable (parent fsynced) before the caller removes the old one.
    """
    old = None
    if not os.path.lexists(dst):
        os.rename(src, dst)
    elif _exchange(src, dst):
        old = src
    else:
        backup = _sibling(dst, "old")
        os.rename(dst, backup)       # dst is absent from here ...
        try:
            os.rename(src, dst)      # ... to here: the window the module doc describes
        except BaseException:
            os.rename(backup, dst)
            raise
        # An .old- directory is always a whole model (_tidy may put it back): rename
        # it to a temporary name before anyone starts removing its files.
        old = _sibling(dst, "tmp")
        os.rename(backup, old)
    _fsync_dir(os.path.dirname(dst))
    return old


def _tidy(path: str) -> None:
    """Clean up after killed saves: put back an old model moved aside, remove their temp dirs."""
    parent, name = os.path.split(path)
    pattern = re.compile(rf"\.{re.escape(name)}\.(tmp|old)-(\d+)-[0-9a-f]+")
    dead = []
    for entry in os.listdir(parent):
        m = pattern.fullmatch(entry)
        if m and not _alive(int(m[2])):
            dead.append((m[1], os.path.join(parent, entry)))
    olds = sorted((p for tag, p in dead if tag == "old"), key=os.path.getmtime)
    if olds and not os.path.lexists(path):
        os.rename(olds[-1], path)
        dead.remove(("old", olds[-1]))
    for _, p in dead:
        shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, run by another user
        pass
    return True


_AT_FDCWD = -100          # linux/fcntl.h
_RENAME_EXCHANGE = 1 << 1  # linux/fs.h


def _exchange(a: str, b: str) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where that is unsupported."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), b)


@functools.cache
def _renameat2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # libc older than glibc 2.28, or not glibc
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn
