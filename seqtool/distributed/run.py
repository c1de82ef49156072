"""``--dask ADDRESS``: tag, eval and dedupe across a Dask cluster (the ``dask`` extra).

ADDRESS is a running scheduler (``tcp://HOST:8786``) or ``local:N``: a LocalCluster
of N worker processes on this machine, started and stopped by the command
(distributed/cluster.py). The inputs are files or globs: every worker opens its
own partitions, so on a cluster they must be on a shared file system at the same
path. Each file is cut into partitions of a few MB at record boundaries, and a
run is two rounds of one task per partition (distributed/parts.py, distributed/tasks.py):

1. count: each partition's records are read and checked as the stage reads them
   (bad records stop the run here, with the file's line; ``--skip-invalid`` counts);
2. the stage itself, on the batches that start in each partition: the same
   batches of ``batch_size`` records as one process makes, so the same bits.

What comes back is reduced here, on the client:
- tag, dedupe (pairs): records, written by the workers as OUTDIR/part-00000.jsonl,
  ... (``output``) or sent back and written to ``out`` in input order;
- eval: the scorers' integer counts, merged exactly (the single-process result,
  not an average of averages);
- dedupe --group: distributed/dedupe.py.

The output equals the single-process command's on each input file, byte for
byte (both with one BLAS thread: the CLI's default and Dask's for its workers);
only the summary line on stderr says more.
"""
import sys
from contextlib import contextmanager
from typing import BinaryIO

from seqtool.distributed.cluster import (
    InOrder,
    Session,
    check,
    collect,
    connect,
    warnings,
)
from seqtool.distributed.parts import (
    aligned,
    dask_format,
    clear_parts,
    expand_inputs,
    part_size,
    plan,
    prepare_dir,
)
from seqtool.errors import DataError, UsageError
from seqtool.stages.base import Report
from seqtool.wording import plural


def _start(inputs, format: str | None, batch_size: int, skip_invalid: bool, threads: int | None,
           **extra) -> tuple[list[str], dict]:
    """(the input files, the options every task gets)."""
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    format = dask_format(format)
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
    stage's record function, see distributed/tasks.count_part), and the batches shared out."""
    from seqtool.distributed import tasks

    parts = plan(files, opts.get("format"), partition_bytes or part_size(files, session.workers))
    futures = [session.client.submit(tasks.count_part, p, model, mode, opts, pure=False) for p in parts]
    counted = collect(session, futures, parts, progress=progress, desc="count")
    return aligned(parts, [r["records"] for r in counted], opts["batch_size"]), counted


def _sink(output: str | None, out: BinaryIO | None):
    """on_result for the records: nothing (the workers wrote the part files) or in order to ``out``."""
    return None if output is not None else InOrder(out or sys.stdout.buffer)


def _where(parts: list, session: Session) -> str:
    return f"{plural(len(parts), 'partition')} on {plural(session.workers, 'worker')}"


# ---------------------------------------------------------------- tag

def run_tag(model: str, inputs, out: BinaryIO | None = None, *, dask: str, output: str | None = None,
            format: str | None = None, output_format: str = "jsonl", batch_size: int = 256,
            threads: int | None = None, skip_invalid: bool = False, progress: bool | None = None,
            partition_bytes: int | None = None, delay: float = 0.0) -> Report:
    """``seqtool tag --dask``: every record of ``inputs`` with the model's predictions, as part files in
    ``output`` or in input order on ``out``. ``delay``: seconds each task sleeps (benchmarks)."""
    from seqtool.distributed import tasks
    from seqtool.model.modelio import load_model

    check(dask)
    task = load_model(model)[0]["task"]
    if task not in ("tagger", "classifier"):
        raise UsageError(f"{model} is a {task} model: use seqtool dedupe", model)
    if output_format == "conll" and task != "tagger":
        raise UsageError("--output-format conll is for taggers")
    if output_format == "inline":
        raise UsageError("--output-format inline is for reading in a terminal: use it without --dask")
    if output_format == "fasttext":
        raise UsageError("--output-format fasttext is not written by --dask: tag without it, or convert the parts")
    files, opts = _start(inputs, format, batch_size, skip_invalid, threads, output_format=output_format,
                         delay=delay)
    with connect(dask, threads) as session, parts_dir(output):
        opts["threads"] = session.threads
        parts, counted = partitions(session, files, model, "tag", opts, partition_bytes, progress)
        futures = [session.client.submit(tasks.tag_part, p, model, opts, output, pure=False) for p in parts]
        results = collect(session, futures, parts, progress=progress, desc="tag", on_result=_sink(output, out))
    n, tokens = sum(r["records"] for r in results), sum(r["tokens"] for r in results)
    return Report(f"{plural(n, 'record')}, {plural(tokens, 'token')} tagged ({_where(counted, session)})",
                  warnings(counted))


# ---------------------------------------------------------------- eval

def run_eval(inputs, *, dask: str, model: str | None = None, pred: bool = False, format: str | None = None,
             batch_size: int = 256, threshold: float | None = None, threads: int | None = None,
             skip_invalid: bool = False, progress: bool | None = None,
             partition_bytes: int | None = None) -> tuple[dict, Report]:
    """``seqtool eval --dask``: each partition scored on a worker, the counts summed here."""
    from seqtool.distributed import tasks
    from seqtool.data.metrics import (
        ClassifierScorer,
        EntityScorer,
        PairScorer,
        format_classifier_report,
        format_entity_report,
        format_pair_report,
    )

    check(dask)
    if (model is None) == (not pred):
        raise UsageError("give -m MODEL to tag and score labelled records, or --pred for records already tagged")
    files, opts = _start(inputs, format, batch_size, skip_invalid, threads)
    task, tau = _eval_task(files, model, format, threshold, skip_invalid)
    opts["tau"] = tau
    with connect(dask, threads) as session:
        opts["threads"] = session.threads
        mode = "pred" if model is None else "pairs" if task == "siamese" else "tag"
        parts, counted = partitions(session, files, model, mode, opts, partition_bytes, progress)
        futures = [session.client.submit(tasks.eval_part, p, model, task, opts, pure=False) for p in parts]
        results = collect(session, futures, parts, progress=progress, desc="eval")
    n = sum(r["records"] for r in results)
    if n == 0:                                   # as stages/eval.nothing_scored, in one process
        return {"task": task, "records": 0}, Report(plural(0, "record"),
                                                    [*warnings(counted), "no records: nothing to score"])
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
    """(task, threshold): the model's, or (``--pred``) what the first record holds, as stages/eval.run_eval reads it."""
    if model is not None:
        from seqtool.model.modelio import load_model

        task = load_model(model)[0]["task"]
        if task == "siamese":
            from seqtool.predict import load_siamese

            return task, load_siamese(model, threshold)[1]
        return task, None
    from seqtool.data.readers import Source
    from seqtool.stages.eval import guess_task

    for path in files:
        src = Source(path, format, skip_invalid=skip_invalid)
        for _, rec in src:
            return guess_task(rec, src.name, 1), threshold
    raise DataError("no records", files[0] if len(files) == 1 else " ".join(files))


# ---------------------------------------------------------------- dedupe

def run_dedupe(model: str, inputs, out: BinaryIO | None = None, *, dask: str, output: str | None = None,
               group: bool = False, top_k: int | None = None, threshold: float | None = None,
               format: str | None = None, batch_size: int = 256, threads: int | None = None,
               skip_invalid: bool = False, progress: bool | None = None,
               partition_bytes: int | None = None) -> Report:
    """``seqtool dedupe --dask``: pairs mode per partition, or --group (distributed/dedupe.py)."""
    from seqtool.distributed import tasks
    from seqtool.predict import load_siamese

    check(dask)
    if top_k:
        raise UsageError("--top-k runs in one process: drop --dask")
    _, tau = load_siamese(model, threshold)
    files, opts = _start(inputs, format, batch_size, skip_invalid, threads, tau=tau)
    with connect(dask, threads) as session, parts_dir(output):
        opts["threads"] = session.threads
        parts, counted = partitions(session, files, model, "group" if group else "pairs", opts, partition_bytes,
                                    progress)
        if group:
            from seqtool.distributed.dedupe import run_groups

            report = run_groups(session, model, parts, opts, output, _sink(output, out), progress, files)
            return Report(f"{report.summary} ({_where(counted, session)})", [*warnings(counted), *report.warnings])
        futures = [session.client.submit(tasks.pairs_part, p, model, opts, output, pure=False) for p in parts]
        results = collect(session, futures, parts, progress=progress, desc="dedupe", on_result=_sink(output, out))
    n, dup = sum(r["records"] for r in results), sum(r["duplicates"] for r in results)
    return Report(f"{plural(n, 'pair')}, {plural(dup, 'duplicate')} at threshold {tau:.4f} "
                  f"({_where(counted, session)})",
                  warnings(counted))
