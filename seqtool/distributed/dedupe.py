"""``seqtool dedupe --group --dask``: the group search of dedupe.py, spread over a cluster.

1. encode: one task per partition turns its texts into float32 unit vectors
   (``encode_part``); the vectors stay on the workers, the ids come here.
2. blocks: rows [k * BLOCK, (k + 1) * BLOCK) of the global order, gathered on a
   worker from the partitions that hold them, as ``find_groups`` slices them.
3. search: one task per block pair (I, J >= I) runs ``dedupe.block_pairs``, the
   function ``find_groups`` runs in one process: memory per task is two blocks
   and one (BLOCK x BLOCK) slice; only the pairs with cosine >= tau come back.
4. join: here, with the same ``GroupJoin`` (union-find, best score per row);
   its result does not depend on the order the pairs arrive in.
5. write: one task per partition reads its records again and adds group,
   duplicate_of and score, as part files or back here in input order.

The same blocks, the same products and the same join: the output is the
single-process one, field for field.
"""
import numpy as np

from seqtool.stages.dedupe import BLOCK, GroupJoin, block_pairs
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
    first, best = _search(session, blocks, n, opts["tau"], progress)
    duplicate_of = [None if f == i else ids[f] for i, f in enumerate(first.tolist())]
    score = [round(float(s), 6) if np.isfinite(s) else None for s in best]
    group = first.tolist()
    futures = [client.submit(tasks.group_part, p, model, opts, group[lo:hi], duplicate_of[lo:hi], score[lo:hi],
                             output, pure=False)
               for p, lo, hi in zip(parts, offsets, offsets[1:])]
    written = sum(r["records"] for r in collect(session, futures, parts, progress=progress, desc="write",
                                                 on_result=sink))
    return Report(f"{plural(written, 'record')} in {plural(len(set(group)), 'group')} at threshold {opts['tau']:.4f}, "
                  f"{plural(len(blocks), 'block')}")


def _block_inputs(encoded: list, offsets: list[int], b0: int, b1: int) -> tuple:
    """(pieces, *futures) for rows [b0, b1): each partition's local row range that falls in the block."""
    pieces, deps = [], []
    for k, fut in enumerate(encoded):
        lo, hi = max(b0, offsets[k]), min(b1, offsets[k + 1])
        if lo < hi:
            pieces.append((lo - offsets[k], hi - offsets[k]))
            deps.append(fut)
    return (pieces, *deps)


def _search(session: Session, blocks: list, n: int, tau: float, progress: bool | None):
    """Every block pair searched on the cluster; the pairs >= tau joined here as they arrive."""
    distributed = import_distributed()
    client = session.client
    futures = [client.submit(block_pairs, blocks[i], blocks[j], i * BLOCK, j * BLOCK, tau, pure=False)
               for i in range(len(blocks)) for j in range(i, len(blocks))]
    join = GroupJoin(n)
    with progress_bar(len(futures), progress, "search") as bar:
        for fut in distributed.as_completed(futures):
            try:
                join.add(*fut.result())
            except Exception as e:   # noqa: BLE001 - one line for the user, whatever the cluster raised
                what = str(e).splitlines()[0] if str(e) else ""
                raise SeqtoolError(f"a block search failed on the cluster: {type(e).__name__}: {what}") from None
            fut.release()
            bar.update()
    return join.result()
