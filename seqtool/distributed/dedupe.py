"""``seqtool dedupe --group --dask``: the leader grouping of model/grouping.py, spread over a cluster.

1. encode: one task per partition turns its texts into float32 unit vectors
   (``encode_part``); the vectors stay on the workers, the ids come here.
2. blocks: rows [k * BLOCK, (k + 1) * BLOCK) of the global order, gathered on a
   worker from the partitions that hold them, as ``find_groups`` slices them.
3. search: the whole graph is submitted at once: ``first_leaders(I, J)`` for
   every J < I (it waits for block J to be settled) and ``settle_block(I)``
   (it waits for those), then ``nearest_leader(I, J)`` for every J and
   ``best_leader(I)``: the functions ``find_groups`` runs in one process;
   memory per task is two blocks and one slice; only O(block) results come here.
4. write: one task per partition reads its records again and adds group,
   duplicate_of and score, as part files or back here in input order.

The same blocks, the same products and the same order of decisions: the output
is the single-process one, field for field.
"""
import numpy as np

from seqtool.model.grouping import (
    BLOCK,
    best_leader,
    first_leaders,
    group_fields,
    join_groups,
    nearest_leader,
    settle_block,
    size_report,
)
from seqtool.distributed.cluster import (
    Session,
    collect,
    import_distributed,
    progress_bar,
)
from seqtool.errors import SeqtoolError
from seqtool.stages.base import Report
from seqtool.wording import plural


def run_groups(session: Session, model: str, parts: list, opts: dict, output: str | None, sink,
               progress: bool | None, files: list[str]) -> Report:
    from seqtool.distributed import tasks

    client = session.client
    encoded = [client.submit(tasks.encode_part, p, model, opts, pure=False) for p in parts]
    metas = collect(session, [client.submit(tasks.without_vectors, e, pure=False) for e in encoded], parts,
                    progress=progress, desc="encode")
    sizes = [m["records"] for m in metas]
    offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).tolist()
    n = offsets[-1]
    if n == 0:                                   # nothing in, nothing out: as in one process
        return Report(plural(0, "record"))
    ids = [i if has else off + k for m, off in zip(metas, offsets)
           for k, (i, has) in enumerate(zip(m["ids"], m["has_id"]))]
    blocks = [client.submit(tasks.block, *_block_inputs(encoded, offsets, b0, min(n, b0 + BLOCK)), pure=False)
              for b0 in range(0, n, BLOCK)]
    del encoded                                  # the blocks hold the vectors now
    rep, sim = _search(session, blocks, opts["tau"], progress)
    fields = [group_fields(rep, sim, ids, i) for i in range(n)]
    group, duplicate_of, score = ([f[key] for f in fields] for key in ("group", "duplicate_of", "score"))
    futures = [client.submit(tasks.group_part, p, model, opts, group[lo:hi], duplicate_of[lo:hi], score[lo:hi],
                             output, pure=False)
               for p, lo, hi in zip(parts, offsets, offsets[1:])]
    written = sum(r["records"] for r in collect(session, futures, parts, progress=progress, desc="write",
                                                 on_result=sink))
    sizes, too_big = size_report(rep, opts["tau"])
    return Report(f"{plural(written, 'record')} in {plural(len(set(group)), 'group')} at threshold {opts['tau']:.4f}; "
                  f"{sizes}; {plural(len(blocks), 'block')}", [too_big] if too_big else [])


def _block_inputs(encoded: list, offsets: list[int], b0: int, b1: int) -> tuple:
    """(pieces, *futures) for rows [b0, b1): each partition's local row range that falls in the block."""
    pieces, deps = [], []
    for k, fut in enumerate(encoded):
        lo, hi = max(b0, offsets[k]), min(b1, offsets[k + 1])
        if lo < hi:
            pieces.append((lo - offsets[k], hi - offsets[k]))
            deps.append(fut)
    return (pieces, *deps)


def _search(session: Session, blocks: list, tau: float, progress: bool | None):
    """Every block settled on the cluster, in the dependency order of ``find_groups``."""
    distributed = import_distributed()
    client = session.client
    settled = []
    for i, vi in enumerate(blocks):
        hits = [client.submit(first_leaders, vi, blocks[j], settled[j], j * BLOCK, tau, pure=False)
                for j in range(i)]
        settled.append(client.submit(settle_block, vi, i * BLOCK, tau, *hits, pure=False))
    nearest = [client.submit(best_leader, *[client.submit(nearest_leader, vi, vj, settled[j], j * BLOCK, pure=False)
                                            for j, vj in enumerate(blocks)], pure=False) for vi in blocks]
    wanted = settled + nearest
    results = [None] * len(wanted)
    index = {f.key: k for k, f in enumerate(wanted)}
    with progress_bar(len(wanted), progress, "search") as bar:
        for fut in distributed.as_completed(wanted):
            try:
                results[index[fut.key]] = fut.result()
            except Exception as e:   # noqa: BLE001 - one line for the user, whatever the cluster raised
                what = str(e).splitlines()[0] if str(e) else ""
                raise SeqtoolError(f"a block search failed on the cluster: {type(e).__name__}: {what}") from None
            bar.update()
    return join_groups(results[:len(blocks)], results[len(blocks):], tau)
