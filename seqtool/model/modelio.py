"""Model and checkpoint directories: written atomically, read back with checks.

A model is a directory: config.json (hyper-parameters, task, architecture, seed,
data fingerprint; save_model adds format_version and seqtool_version), weights.npz
(bool/int/float arrays, loaded with allow_pickle=False), vocab.json, metrics.json, and
history.tsv (metrics.json's per-epoch history as a table, model/history.py; not read back).
A model trained with --embeddings keeps its word table apart, so that a 400k-word
table loads fast: embedding.npy (uncompressed, memory-mapped copy-on-write at load,
config["word_table"] names the weight) and words.txt (the words the vectors file
added to the vocabulary, one per line, instead of 400k entries of vocab.json).
A checkpoint (--resume) is state.json (the state, each array in it replaced by
{"$array": key}) and arrays.npz.

Both are written atomically and read as one version (seqtool/atomicdir.py): PATH
is always a complete directory, old or new, even after a kill -9 mid-save.
"""
import functools
import hashlib
import json
import os
import zipfile
from collections.abc import Iterable

import numpy as np

from seqtool import __version__
from seqtool.model import atomicdir
from seqtool.data.vocab import VECTOR_WORDS
from seqtool.errors import DataError, SeqtoolError
from seqtool.model.history import history_tsv

FORMAT_VERSION = 1
MODEL_FILES = ("config.json", "weights.npz", "vocab.json", "metrics.json")      # what load_model reads
LARGE_FILES = ("embedding.npy", "words.txt")   # optional: the word table and the vectors' words
SAVED_FILES = (*MODEL_FILES, "history.tsv", *LARGE_FILES)                      # what save_model may write
CHECKPOINT_FILES = ("state.json", "arrays.npz")
_ARRAY_REF = "$array"
_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integer, float


# ---------------------------------------------------------------- public API

def save_model(path, config: dict, weights: dict, vocab: dict, metrics: dict, *,
               keep_previous: bool = False, vector_words: list[str] | None = None) -> None:
    """Write the model directory at ``path`` atomically (see the module doc); ``keep_previous``
    keeps the model it replaces as ``<path>.prev``. With config["word_table"], that weight goes to
    embedding.npy and ``vector_words`` to words.txt."""
    config = {**config, "format_version": FORMAT_VERSION, "seqtool_version": __version__}
    weights = _check_arrays(weights, "weight")
    large = {}
    if config.get("word_table"):
        large["embedding.npy"] = functools.partial(_write_npy, arr=weights.pop(config["word_table"]))
        large["words.txt"] = "".join(w + "\n" for w in vector_words or ()).encode("utf-8")
    files = {"config.json": _json_bytes(config, "config"),
             "weights.npz": _npz_writer(weights),
             "vocab.json": _json_bytes(vocab, "vocab"),
             "metrics.json": _json_bytes(metrics, "metrics"),
             "history.tsv": history_tsv(metrics.get("history") or []), **large}   # in the same swap as metrics.json
    atomicdir.replace_dir(path, files, "model", keep_previous, optional=LARGE_FILES)


def check_model_path(path) -> None:
    """Refuse, before any training, a ``path`` where save_model (or the checkpoint beside it) would fail."""
    atomicdir.check_replaceable(path, SAVED_FILES, "model")
    atomicdir.check_replaceable(checkpoint_path(path), CHECKPOINT_FILES, "checkpoint")


def checkpoint_path(model_path) -> str:
    """Where training keeps the checkpoint of the model it writes at ``model_path`` (--resume reads it)."""
    return os.fspath(model_path).rstrip("/") + ".ckpt"


def load_model(path) -> tuple[dict, dict, dict, dict]:
    """(config, weights, vocab, metrics) of the model directory at ``path``, checked; the word table of
    embedding.npy is among the weights (memory-mapped), words.txt's words in vocab[VECTOR_WORDS]."""
    files = _load_dir(path, MODEL_FILES, "model", optional=LARGE_FILES)
    config, weights, vocab, metrics = (files[name] for name in MODEL_FILES)
    table = config.get("word_table")
    if table:
        if "embedding.npy" not in files or "words.txt" not in files:
            raise SeqtoolError("embedding.npy or words.txt is missing: the model is incomplete", os.fspath(path))
        weights[table] = files["embedding.npy"]
        vocab[VECTOR_WORDS] = files["words.txt"]
    return config, weights, vocab, metrics


def save_checkpoint(path, state: dict) -> None:
    """Write a resumable training state atomically: JSON values (string keys), numpy arrays anywhere in it."""
    arrays = {}
    doc = {"format_version": FORMAT_VERSION, "seqtool_version": __version__,
           "state": _extract_arrays(state, arrays)}
    files = {"state.json": _json_bytes(doc, "checkpoint state"), "arrays.npz": _npz_writer(_check_arrays(arrays, "array"))}
    atomicdir.replace_dir(path, files, "checkpoint")


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


def _write_npy(f, arr: np.ndarray) -> None:
    np.lib.format.write_array(f, np.ascontiguousarray(arr), allow_pickle=False)


def _npz_writer(arrays: dict):
    return functools.partial(_write_npz, arrays=arrays)


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

def _load_dir(path, names: tuple, kind: str, optional: tuple = ()) -> dict:
    """Each file of the directory parsed (.json, .npz, .npy or .txt); the first holds format_version,
    checked first."""
    path = os.fspath(path)
    files = atomicdir.open_snapshot(path, names, kind, optional)
    readers = {".npz": _npz_load, ".npy": _npy_map, ".txt": _lines_load, ".json": _json_load}
    out = {}
    try:
        for name, f in files.items():
            out[name] = readers[os.path.splitext(name)[1]](f, path, name)
            if name == names[0]:
                _check_version(out[name], path, name, kind)
    finally:
        for f in files.values():
            f.close()
    return out


def _json_load(f, path: str, name: str):
    try:
        return json.loads(f.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise SeqtoolError(f"not valid JSON ({e})", os.path.join(path, name)) from None


def _lines_load(f, path: str, name: str) -> list[str]:
    try:
        return f.read().decode("utf-8").split("\n")[:-1]
    except UnicodeDecodeError as e:
        raise SeqtoolError(f"not UTF-8 ({e})", os.path.join(path, name)) from None


def _npy_map(f, path: str, name: str) -> np.ndarray:
    """The .npy array memory-mapped copy-on-write: pages are read as they are used, never written back."""
    try:
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}.get(np.lib.format.read_magic(f))
        if read_header is None:
            raise ValueError("an .npy format version this seqtool does not read")
        shape, fortran, dtype = read_header(f)
        if dtype.kind not in _NUMERIC_KINDS or fortran:
            raise ValueError(f"dtype {dtype}, {'Fortran' if fortran else 'C'} order")
        # a plain ndarray over the mapping (the numba kernels take it as any array)
        return np.memmap(f, dtype=dtype, mode="c", shape=shape, offset=f.tell()).view(np.ndarray)
    except (ValueError, OSError) as e:
        raise SeqtoolError(f"cannot read the array: {e}", os.path.join(path, name)) from None


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


