"""``--dask ADDRESS``: tag, eval and dedupe across a Dask cluster (the ``dask`` extra).

ADDRESS is a running scheduler (``tcp://HOST:8786``) or ``local:N``: a LocalCluster
of N worker processes on this machine, started and stopped by the command. The
inputs are files (every worker opens its own partitions: on a cluster they must
be on a shared file system, at the same path); each is cut into partitions of a
few MB at record boundaries (distributed_parts) and each partition is one task
(distributed_tasks). What comes back is reduced here, on the client:

- tag, dedupe (pairs): records, written by the workers as OUTDIR/part-00000.jsonl,
  ... (``output``) or sent back and written to ``out`` in input order;
- eval: the scorers' integer counts, merged exactly (the result is the
  single-process one, not an average of averages);
- dedupe --group: distributed_dedupe.

The results equal the single-process commands' byte for byte: the same record
functions run on every partition. Only the summary line on stderr says more.
"""
import logging
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from seqtool.distributed_parts import (
    aligned,
    clear_parts,
    expand_inputs,
    part_size,
    plan,
    prepare_dir,
)
from seqtool.errors import DataError, SeqtoolError, UsageError
from seqtool.jsonl import InvalidRecords
from seqtool.stages import Report

EXTRA = "--dask needs the dask extra: pip install 'seqtool[dask]'"
_ADDRESS = re.compile(r"[a-z][a-z0-9+.-]*://\S+")


def import_distributed():
    """The ``distributed`` package, or the one-line UsageError naming the extra."""
    try:
        import distributed
    except ImportError:
        raise UsageError(EXTRA) from None
    return distributed


def parse_address(address: str) -> int | str:
    """``local:N`` -> N (worker processes to start), a scheduler URL -> itself; UsageError otherwise."""
    local = re.fullmatch(r"local:(\d+)", address)
    if local and int(local.group(1)) >= 1:
        return int(local.group(1))
    if _ADDRESS.fullmatch(address):
        return address
    raise UsageError(f"--dask {address}: expected a scheduler address (tcp://HOST:PORT) or local:N (N >= 1)")


def _check(address: str) -> None:
    """Before any work: the address makes sense and the extra is installed."""
    parse_address(address)
    import_distributed()


@dataclass
class Session:
    client: object
    workers: int
    threads: int | None     # numba threads per task: --threads, or the cores of a local cluster shared out


@contextmanager
def connect(address: str, threads: int | None = None):
    """A Session on the cluster at ``address``; a ``local:N`` cluster lives as long as the session."""
    where = parse_address(address)
    distributed = import_distributed()
    if isinstance(where, int):
        cluster = distributed.LocalCluster(n_workers=where, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=logging.ERROR)
        client = distributed.Client(cluster)
        try:
            yield Session(client, where, threads or max(1, (os.cpu_count() or 1) // where))
        finally:
            client.close()
            cluster.close()
        return
    try:
        client = distributed.Client(where, timeout="20s")
    except (OSError, TimeoutError) as e:
        raise UsageError(f"cannot reach the Dask scheduler at {where}: {e}") from None
    try:
        client.wait_for_workers(1, timeout=60)
        yield Session(client, len(client.nthreads()), threads)
    except TimeoutError:
        raise UsageError(f"the Dask scheduler at {where} has no workers (start some: dask worker {where})") from None
    finally:
        client.close()


def _bar(total: int, progress: bool | None, desc: str):
    """tqdm over completed partitions on stderr: when ``progress``, or (None) when stderr is a terminal."""
    from tqdm import tqdm

    enabled = progress if progress is not None else sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit=" partitions", file=sys.stderr, leave=False, disable=not enabled)


def collect(session: Session, futures: list, parts: list, *, progress=None, desc: str = "partitions",
            on_result=None) -> list[dict]:
    """The tasks' results in partition order (``on_result(i, result)`` as each completes).

    An error in a task stops the run with the first error in input order: the
    tasks after it are cancelled, those before it awaited.
    """
    distributed = import_distributed()
    results: list = [None] * len(futures)
    index = {f.key: i for i, f in enumerate(futures)}
    with _bar(len(futures), progress, desc) as bar:
        for fut in distributed.as_completed(futures):
            i = index[fut.key]
            results[i] = _result(fut, parts[i])
            bar.update()
            if "error" in results[i]:
                session.client.cancel(futures[i + 1:])
                for j in range(i):
                    results[j] = results[j] or _result(futures[j], parts[j])
                raise _first_error(results[:i + 1], parts)
            if on_result is not None:
                on_result(i, results[i])
    return results


def _result(fut, part) -> dict:
    """A task's result; a crash on the cluster (a bug, a worker killed too often) as one line."""
    try:
        return fut.result()
    except Exception as e:   # noqa: BLE001 - whatever the cluster raises, the user gets one line
        what = str(e).splitlines()[0] if str(e) else ""
        raise SeqtoolError(f"partition {part.index} (bytes {part.start}-{part.end}) failed on the cluster: "
                           f"{type(e).__name__}: {what}", part.path) from None


def _first_error(results: list, parts: list) -> SeqtoolError:
    """The first error in input order, as the worker located it."""
    err = next(r["error"] for r in results if "error" in r)
    cls = {"DataError": DataError, "UsageError": UsageError}.get(err["type"], SeqtoolError)
    return cls(err["message"], err["path"], err["line"])


def warnings(results: list) -> list[str]:
    """The ``--skip-invalid`` warning over all partitions: the total and the first in input order."""
    reject = InvalidRecords("", skip=True)
    for r in results:
        reject.count += r.get("skipped", 0)
        if reject.first is None and r.get("first"):
            reject.first = DataError(r["first"]["message"], r["first"]["path"], r["first"]["line"])
    return [w for w in [reject.warning()] if w]


class InOrder:
    """``on_result`` that writes each partition's ``data`` to ``out`` as soon as all before it are written."""

    def __init__(self, out: BinaryIO):
        self.out, self.next, self.waiting = out, 0, {}

    def __call__(self, i: int, result: dict) -> None:
        self.waiting[i] = result.pop("data", b"")
        while self.next in self.waiting:
            self.out.write(self.waiting.pop(self.next))
            self.next += 1
        self.out.flush()


def _start(inputs, output: str | None, out: BinaryIO | None, format: str | None, batch_size: int,
           skip_invalid: bool, threads: int | None, **extra) -> tuple[list[str], dict]:
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if format is not None and format not in ("jsonl", "conll", "text"):
        raise UsageError(f"unknown format {format!r} (expected one of jsonl, conll, text)")
    return expand_inputs(inputs), {"format": format, "batch_size": batch_size, "skip_invalid": skip_invalid,
                                   "threads": threads, **extra}


@contextmanager
def parts_dir(output: str | None):
    """OUTDIR emptied of an earlier run's part files; on failure, of this run's too (no partial output
    to mistake for a whole one); on success, of the temporaries that killed tasks left."""
    if output is None:
        yield
        return
    prepare_dir(output)
    try:
        yield
    except BaseException:
        clear_parts(output)
        raise
    clear_parts(output, temporaries=True)


def partitions(session: Session, files: list[str], model: str | None, mode: str, opts: dict,
               partition_bytes: int | None = None, progress: bool | None = None) -> tuple[list, list]:
    """(aligned parts, pass-1 results): the inputs cut, every record checked and counted (mode: the
    stage's record function, see distributed_tasks.count_part), and the batches shared out."""
    from seqtool import distributed_tasks as tasks

    parts = plan(files, opts.get("format"), partition_bytes or part_size(files, session.workers))
    futures = [session.client.submit(tasks.count_part, p, model, mode, opts, pure=False) for p in parts]
    counted = collect(session, futures, parts, progress=progress, desc="count")
    return aligned(parts, [r["records"] for r in counted], opts["batch_size"]), counted


def _sink(output: str | None, out: BinaryIO | None):
    """on_result for the records: nothing (the workers wrote the part files) or in order to ``out``."""
    return None if output is not None else InOrder(out or sys.stdout.buffer)


def _where(parts: list, session: Session) -> str:
    return f"{len(parts)} partitions on {session.workers} workers"


# ---------------------------------------------------------------- tag

def run_tag(model: str, inputs, out: BinaryIO | None = None, *, dask: str, output: str | None = None,
            format: str | None = None, output_format: str = "jsonl", batch_size: int = 256,
            threads: int | None = None, skip_invalid: bool = False, progress: bool | None = None,
            partition_bytes: int | None = None, delay: float = 0.0) -> Report:
    """``seqtool tag --dask``: every record of ``inputs`` with the model's predictions, as part files in
    ``output`` or in input order on ``out``. ``delay``: seconds each task sleeps (benchmarks)."""
    from seqtool import distributed_tasks as tasks
    from seqtool.modelio import load_model

    _check(dask)
    task = load_model(model)[0]["task"]
    if task not in ("tagger", "classifier"):
        raise UsageError(f"{model} is a {task} model: use seqtool dedupe", model)
    if output_format == "conll" and task != "tagger":
        raise UsageError("--output-format conll is for taggers")
    files, opts = _start(inputs, output, out, format, batch_size, skip_invalid, threads,
                         output_format=output_format, delay=delay)
    with connect(dask, threads) as session, parts_dir(output):
        opts["threads"] = session.threads
        parts, counted = partitions(session, files, model, "tag", opts, partition_bytes, progress)
        futures = [session.client.submit(tasks.tag_part, p, model, opts, output, pure=False) for p in parts]
        results = collect(session, futures, parts, progress=progress, desc="tag", on_result=_sink(output, out))
    n, tokens = sum(r["records"] for r in results), sum(r["tokens"] for r in results)
    return Report(f"{n} records, {tokens} tokens tagged ({_where(counted, session)})", warnings(counted))


# ---------------------------------------------------------------- eval

def run_eval(inputs, *, dask: str, model: str | None = None, pred: bool = False, format: str | None = None,
             batch_size: int = 256, threshold: float | None = None, threads: int | None = None,
             skip_invalid: bool = False, progress: bool | None = None,
             partition_bytes: int | None = None) -> tuple[dict, Report]:
    """``seqtool eval --dask``: each partition scored on a worker, the counts summed here."""
    from seqtool import distributed_tasks as tasks
    from seqtool.metrics import (
        ClassifierScorer,
        EntityScorer,
        PairScorer,
        format_classifier_report,
        format_entity_report,
        format_pair_report,
    )

    _check(dask)
    if (model is None) == (not pred):
        raise UsageError("give -m MODEL to tag and score labelled records, or --pred for records already tagged")
    files, opts = _start(inputs, None, None, format, batch_size, skip_invalid, threads)
    task, tau = _eval_task(files, model, format, threshold, skip_invalid)
    opts["tau"] = tau
    name = files[0] if len(files) == 1 else " ".join(files)
    with connect(dask, threads) as session:
        opts["threads"] = session.threads
        mode = "pred" if model is None else "pairs" if task == "siamese" else "tag"
        parts, counted = partitions(session, files, model, mode, opts, partition_bytes, progress)
        futures = [session.client.submit(tasks.eval_part, p, model, task, opts, pure=False) for p in parts]
        results = collect(session, futures, parts, progress=progress, desc="eval")
    n = sum(r["records"] for r in results)
    if n == 0:
        raise DataError("no records", name)
    if task == "siamese":
        import numpy as np

        scorer = PairScorer()
        scorer.add(np.concatenate([r["similarities"] for r in results]), np.concatenate([r["gold"] for r in results]))
        result = scorer.result(tau)
        return {"task": task, "records": n, **result}, Report(format_pair_report(result).rstrip("\n"))
    kind = EntityScorer if task == "tagger" else ClassifierScorer
    scorer = kind()
    for r in results:
        scorer.merge(kind.from_dict(r["counts"]))
    result = scorer.result()
    table = format_entity_report(result) if task == "tagger" else format_classifier_report(result)
    return {"task": task, "records": n, **result}, Report(table.rstrip("\n"), warnings(counted))


def _eval_task(files: list[str], model: str | None, format: str | None, threshold: float | None,
               skip_invalid: bool) -> tuple[str, float | None]:
    """(task, threshold): the model's, or (``--pred``) what the first record holds, as score.run_eval reads it."""
    if model is not None:
        from seqtool.modelio import load_model

        task = load_model(model)[0]["task"]
        if task == "siamese":
            from seqtool.dedupe import _load

            return task, _load(model, threshold)[1]
        return task, None
    from seqtool.readers import Source
    from seqtool.score import _guess_task

    for path in files:
        src = Source(path, format, skip_invalid=skip_invalid)
        for _, rec in src:
            return _guess_task(rec, src.name, 1), threshold
    raise DataError("no records", files[0] if len(files) == 1 else " ".join(files))


# ---------------------------------------------------------------- dedupe

def run_dedupe(model: str, inputs, out: BinaryIO | None = None, *, dask: str, output: str | None = None,
               group: bool = False, top_k: int | None = None, threshold: float | None = None,
               format: str | None = None, batch_size: int = 256, threads: int | None = None,
               skip_invalid: bool = False, progress: bool | None = None,
               partition_bytes: int | None = None) -> Report:
    """``seqtool dedupe --dask``: pairs mode per partition, or --group (distributed_dedupe)."""
    from seqtool import distributed_tasks as tasks
    from seqtool.dedupe import _load

    _check(dask)
    if top_k:
        raise UsageError("--top-k runs in one process: drop --dask")
    _, tau = _load(model, threshold)
    files, opts = _start(inputs, output, out, format, batch_size, skip_invalid, threads, tau=tau)
    with connect(dask, threads) as session, parts_dir(output):
        opts["threads"] = session.threads
        parts, counted = partitions(session, files, model, "group" if group else "pairs", opts, partition_bytes,
                                    progress)
        if group:
            from seqtool.distributed_dedupe import run_groups

            report = run_groups(session, model, parts, opts, output, _sink(output, out), progress, files)
            return Report(f"{report.summary} ({_where(counted, session)})", warnings(counted))
        futures = [session.client.submit(tasks.pairs_part, p, model, opts, output, pure=False) for p in parts]
        results = collect(session, futures, parts, progress=progress, desc="dedupe", on_result=_sink(output, out))
    n, dup = sum(r["records"] for r in results), sum(r["duplicates"] for r in results)
    return Report(f"{n} pairs, {dup} duplicates at threshold {tau:.4f} ({_where(counted, session)})",
                  warnings(counted))
