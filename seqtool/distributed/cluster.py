"""The Dask side of ``--dask``: the cluster, and results gathered in input order.

``connect(ADDRESS)`` gives a Session on a running scheduler (``tcp://HOST:8786``)
or on a LocalCluster of N worker processes (``local:N``) that lives as long as
the session. ``collect`` waits for one task per partition, shows a tqdm bar over
the completed ones on stderr, hands each result on as it arrives (``InOrder``
writes records in input order), and turns the first error in input order into
the one-line SeqtoolError the CLI prints: the tasks after it are cancelled.
Without the ``dask`` extra, every entry point is a one-line UsageError naming it.
"""
import logging
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from seqtool.errors import DataError, SeqtoolError, UsageError
from seqtool.data.jsonl import InvalidRecords

EXTRA = ("--dask needs the dask extra: pip install 'seqtool[dask]' (from a checkout of the repository: "
         "pip install '.[dask]')")
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


def check(address: str) -> None:
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
        client = distributed.Client(where, timeout="10s")
    except (OSError, TimeoutError) as e:
        raise UsageError(f"cannot reach the Dask scheduler at {where}: {e}") from None
    try:
        try:
            client.wait_for_workers(1, timeout=60)
        except TimeoutError:
            raise UsageError(f"the Dask scheduler at {where} has no workers (start some: dask worker {where})") \
                from None
        yield Session(client, len(client.nthreads()), threads)
    finally:
        client.close()


def progress_bar(total: int, progress: bool | None, desc: str):
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
    with progress_bar(len(futures), progress, desc) as bar:
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
