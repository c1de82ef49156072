"""What the Dask workers run: one plain function per partition, plain data in and out.

Every task
- loads the model once per worker process and keeps it (``worker_model``: keyed by
  the directory's path, inode and mtime, so a model promoted over the old one is
  read afresh); numba's compiled kernels come from its on-disk cache
  (NUMBA_CACHE_DIR, shared by the worker processes of a machine);
- runs under a process-wide lock: numba's kernels are called from one thread at
  a time even on a worker started with several threads;
- returns a dict. A SeqtoolError (a bad record, an unwritable file) comes back
  as ``{"error": {...}}`` with the file's own line, not raised: an exception
  crosses the wire without the location the client prints.

Two passes: ``count_part`` checks and counts a partition's records (the
errors and the ``--skip-invalid`` count come from it); the other tasks then run
on aligned parts (distributed/parts.py: the same batches as one process).

Part files are written to a temporary name and renamed when complete
(``part_output``), so a task re-run after its worker died never leaves a torn
file or a second copy.
"""
import functools
import io
import itertools
import os
import secrets
import threading
import time
from contextlib import contextmanager

from seqtool.distributed.parts import Part, PartSource, locate
from seqtool.errors import DataError, SeqtoolError, UsageError
from seqtool.data.jsonl import dumps, parse_record, replacing

_LOCK = threading.Lock()
_MODELS: dict = {}


class _ByRecord(DataError):
    """An error located by the record's number in its file (as ``seqtool eval`` counts), not by its line."""


def worker_model(path: str, threads: int | None):
    """The LoadedModel at ``path``, read once per worker process."""
    from seqtool.runtime import configure
    from seqtool.predict import LoadedModel

    configure(threads)
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_ino, st.st_mtime_ns)
    if key not in _MODELS:
        if len(_MODELS) >= 4:
            _MODELS.clear()
        _MODELS[key] = LoadedModel(path)
    return _MODELS[key]


def _task(fn):
    """A partition task: under the lock, errors returned located, with the worker's timing."""
    @functools.wraps(fn)
    def task(part: Part, *args):
        t0 = time.perf_counter()
        try:
            with _LOCK:
                result = fn(part, *args)
        except _ByRecord as e:
            return {"error": _error(e, by_record=True)}
        except SeqtoolError as e:
            return {"error": _error(locate(e, part))}
        result.update(seconds=time.perf_counter() - t0, pid=os.getpid())
        return result
    return task


def _error(e: SeqtoolError, by_record: bool = False) -> dict:
    kind = "UsageError" if isinstance(e, UsageError) else "DataError" if isinstance(e, DataError) else "SeqtoolError"
    return {"type": kind, "message": e.message, "path": e.path, "line": e.line, "by_record": by_record}


def _rejects(src: PartSource) -> dict:
    """What ``--skip-invalid`` dropped in this partition: the count and the first, located in the file."""
    first = src.reject.first
    return {"skipped": src.reject.count, "first": _error(locate(first, src.part)) if first else None}


def _chunks(records, size: int):
    return iter(lambda: list(itertools.islice(records, size)), [])


def _valid(mode: str, loaded):
    """The per-record function of each stage: what makes a record count (or fail)."""
    if mode == "pred":
        return lambda r: r
    from seqtool.predict import encode_pair, encode_text

    return {"tag": loaded.encode, "pairs": lambda r: encode_pair(loaded, r),
            "group": lambda r: encode_text(loaded, r)}[mode]


@_task
def count_part(part: Part, model: str | None, mode: str, opts: dict) -> dict:
    """Pass 1: the partition's records, checked as the stage will read them (``mode``: tag, pairs, group,
    pred); the first bad one stops the run here, or ``--skip-invalid`` counts it."""
    loaded = worker_model(model, opts["threads"]) if model is not None else None
    src = PartSource(part, skip_invalid=opts["skip_invalid"])
    n = sum(1 for _ in src.map(_valid(mode, loaded)))
    return {"records": n, **_rejects(src)}


@contextmanager
def part_output(out_dir: str | None, name: str):
    """A binary stream for a partition's output: memory (``out_dir`` None: the task returns the bytes),
    or a temporary file in ``out_dir`` renamed to ``name`` once complete."""
    if out_dir is None:
        yield io.BytesIO()
        return
    final = os.path.join(out_dir, name)
    tmp = os.path.join(out_dir, f".{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with replacing(final, tmp) as f:
            yield f
    except OSError as e:
        raise UsageError(f"cannot write: {e.strerror or e}", final) from None


def _data(out) -> dict:
    return {"data": out.getvalue()} if isinstance(out, io.BytesIO) else {}


# ---------------------------------------------------------------- tag

@_task
def tag_part(part: Part, model: str, opts: dict, out_dir: str | None) -> dict:
    from seqtool.data.tagged import conll_lines
    from seqtool.predict import predict_chunk

    time.sleep(opts.get("delay", 0.0))           # benchmarks: a simulated slow partition
    t0 = time.perf_counter()
    loaded = worker_model(model, opts["threads"])
    load_s = time.perf_counter() - t0
    src = PartSource(part, skip_invalid=opts["skip_invalid"])
    conll = opts["output_format"] == "conll"
    n = tokens = 0
    with part_output(out_dir, part.file_name("conll" if conll else "jsonl")) as out:
        for chunk in _chunks(src.map(loaded.encode), opts["batch_size"]):
            lines = [conll_lines(r) if conll else dumps(r) + "\n" for r in predict_chunk(loaded, chunk)]
            out.write("".join(lines).encode())
            n += len(chunk)
            tokens += sum(len(r["tokens"]) for r in chunk)
        data = _data(out)
    return {"records": n, "tokens": tokens, "load_seconds": load_s, **data}


# ---------------------------------------------------------------- eval

@_task
def eval_part(part: Part, model: str | None, task: str, opts: dict) -> dict:
    """Counts of one part: a scorer's to_dict (tagger, classifier) or the pairs' similarities (siamese)."""
    src = PartSource(part, skip_invalid=opts["skip_invalid"])
    if task == "siamese":
        return _eval_pairs(src, model, opts)
    from seqtool.data.metrics import ClassifierScorer, EntityScorer
    from seqtool.predict import predicted
    from seqtool.stages.eval import add_record

    if model is None:
        records = src.map_numbered(_valid("pred", None))
    else:
        loaded = worker_model(model, opts["threads"])
        records = predicted(loaded, src.map_numbered(loaded.encode), opts["batch_size"])
    scorer, n = EntityScorer() if task == "tagger" else ClassifierScorer(), 0
    for n, (lineno, rec) in enumerate(records, 1):
        add_record(scorer, task, rec, src.name, lineno)     # a partition-relative line: the task wrapper locates it
    return {"records": n, "counts": scorer.to_dict()}


def _eval_pairs(src: PartSource, model: str | None, opts: dict) -> dict:
    import numpy as np

    if model is None:
        records = src.map(_valid("pred", None))
    else:
        from seqtool.stages.dedupe import write_pairs

        buf = io.BytesIO()       # as stages/eval.py: the pairs with their similarity, read back
        write_pairs(worker_model(model, opts["threads"]), opts["tau"], src, buf, opts["batch_size"], require_gold=True)
        records = map(parse_record, io.BytesIO(buf.getvalue()))
    sims, gold = [], []
    for n, rec in enumerate(records, src.part.base + 1):
        if rec.get("gold_is_duplicate") is None:
            raise _ByRecord("pair has no gold \"is_duplicate\" to score against", src.name, n)
        sims.append(rec["similarity"])
        gold.append(int(rec["gold_is_duplicate"]))
    return {"records": len(sims), "similarities": np.array(sims, dtype=np.float64), "gold": np.array(gold)}


# ---------------------------------------------------------------- dedupe

@_task
def pairs_part(part: Part, model: str, opts: dict, out_dir: str | None) -> dict:
    """dedupe's pairs mode on one partition: similarity and is_duplicate per pair."""
    from seqtool.stages.dedupe import write_pairs

    src = PartSource(part, skip_invalid=opts["skip_invalid"])
    buf = io.BytesIO()
    write_pairs(worker_model(model, opts["threads"]), opts["tau"], src, buf, opts["batch_size"])
    lines = buf.getvalue().splitlines()
    dup = sum(parse_record(line)["is_duplicate"] for line in lines)
    with part_output(out_dir, part.file_name("jsonl")) as out:
        out.write(buf.getvalue())
        data = _data(out)
    return {"records": len(lines), "duplicates": dup, **data}


class _NoteIds(PartSource):
    """A PartSource that notes, for each record ``map`` yields, whether it has an ``id``."""

    def __init__(self, part: Part, **kw):
        super().__init__(part, **kw)
        self.seen: list[bool] = []

    def map(self, fn):
        def noted(record):
            out = fn(record)
            self.seen.append("id" in record)      # every valid record read, the skipped ones first
            return out
        return super().map(noted)

    @property
    def has_id(self) -> list[bool]:
        return self.seen[self.part.skip:]


@_task
def encode_part(part: Part, model: str, opts: dict) -> dict:
    """Group mode, pass 1: the unit vectors (n, d) float32 of the partition's texts, their ids and
    whether each record had one (the client numbers those that did not)."""
    from seqtool.stages.dedupe import encode_source

    src = _NoteIds(part, skip_invalid=opts["skip_invalid"])
    vectors, ids = encode_source(worker_model(model, opts["threads"]), src, batch_size=opts["batch_size"])
    return {"records": len(ids), "vectors": vectors, "ids": ids, "has_id": src.has_id}


def without_vectors(encoded: dict) -> dict:
    """What the client needs of pass 1 (the vectors stay on the workers)."""
    return {k: v for k, v in encoded.items() if k != "vectors"}


def block(pieces: list[tuple[int, int]], *encoded: dict):
    """Rows of the global block: ``encoded[k]["vectors"][lo:hi]`` for each piece, in order."""
    import numpy as np

    return np.concatenate([e["vectors"][lo:hi] for e, (lo, hi) in zip(encoded, pieces)])


@_task
def group_part(part: Part, model: str, opts: dict, first: list, duplicate_of: list, score: list,
               out_dir: str | None) -> dict:
    """Group mode, pass 2: the partition's records again, with group, duplicate_of and score."""
    from seqtool.predict import encode_text

    loaded = worker_model(model, opts["threads"])
    src = PartSource(part, skip_invalid=opts["skip_invalid"])
    n = 0
    with part_output(out_dir, part.file_name("jsonl")) as out:
        for n, (raw, _) in enumerate(src.map(lambda r: (r, encode_text(loaded, r))), 1):
            raw["group"], raw["duplicate_of"], raw["score"] = first[n - 1], duplicate_of[n - 1], score[n - 1]
            out.write((dumps(raw) + "\n").encode())
        data = _data(out)
    if n != len(first):
        raise SeqtoolError(f"partition {part.index} changed between the two passes: {part.path} was modified")
    return {"records": n, **data}
