"""Leader grouping of unit vectors: every member is a duplicate of its group's representative.

Two passes over the rows, cut into blocks of BLOCK:
  1. representatives, in input order: a row becomes one unless it matches
     (cosine >= tau) a representative before it. Block I is settled from
     ``first_leaders(I, J)`` for every earlier block J (for each row of I, the
     first representative of J it matches: a (bi, representatives of J)
     product), then ``settle_block(I, hits)``: the rows no earlier block claims
     are resolved among themselves in order, in a numba loop over the block's
     own (bi, bi) product. No two representatives match each other;
  2. members: every other row joins the representative it is most similar to,
     the earliest on a tie (``nearest_leader`` for every block, ``best_leader``).
     It matched one in pass 1, so its ``score`` is >= tau; ``join_groups`` keeps
     the pass-1 representative in the rare case where the two products'
     round-off disagrees at tau.
A group is thus a ball around its representative, never a chain: A~B and B~C do
not put C with A unless C~A (connected components did). Joining the nearest
representative rather than the earliest one it matches keeps true duplicates
together more often (Quora dev questions, same-group vs gold agreement 0.7005 vs
0.668, with pairs mode at 0.739).

Memory is a few (BLOCK x BLOCK) slices and O(N) results, never N x N, and
there is no Python loop per pair. ``seqtool dedupe --group --dask`` submits the
same functions as tasks on the same blocks (distributed/dedupe.py), so its
output is this one's, bit for bit.
"""
import numba
import numpy as np

BLOCK = 2048
NONE = -1          # no representative (a row that is one, or not matched yet)


def find_groups(v: np.ndarray, tau: float, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """(representative of each row, its similarity to it); a representative has itself and NaN.

    ``v`` (N, d) holds unit vectors in input order.
    """
    starts = range(0, len(v), block)
    settled = []
    for i0 in starts:
        vi = v[i0:i0 + block]
        hits = [first_leaders(vi, v[j0:j0 + block], settled[k], j0, tau) for k, j0 in enumerate(range(0, i0, block))]
        settled.append(settle_block(vi, i0, tau, *hits))
    nearest = [best_leader(*[nearest_leader(v[i0:i0 + block], v[j0:j0 + block], settled[k], j0)
                             for k, j0 in enumerate(starts)]) for i0 in starts]
    return join_groups(settled, nearest, tau)


def first_leaders(vi: np.ndarray, vj: np.ndarray, settled_j: tuple, j0: int,
                  tau: float) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``vi``: (position of the first representative of block J it matches, or NONE; the
    similarity to it). ``settled_j`` is block J's ``settle_block`` result, ``j0`` its first row's position
    in the sequence being settled (the rows in rank order)."""
    leaders = np.flatnonzero(settled_j[2])
    if len(leaders) == 0:
        return np.full(len(vi), NONE, dtype=np.int64), np.full(len(vi), np.nan, dtype=np.float32)
    s = vi @ vj[leaders].T                                 # (bi, leaders of J)
    hit = s >= np.float64(tau)                             # compared in float64: a member's score is >= tau
    found = hit.any(axis=1)
    col = hit.argmax(axis=1)                               # the first True: the earliest representative
    rep = np.where(found, j0 + leaders[col], NONE)
    sim = np.where(found, s[np.arange(len(s)), col], np.nan)
    return rep.astype(np.int64), sim.astype(np.float32)


def settle_block(vi: np.ndarray, i0: int, tau: float, *hits: tuple) -> tuple:
    """Block I settled: (representative per row, similarity to it, is-representative mask).

    ``hits`` are the ``first_leaders`` results of the earlier blocks, in block order.
    """
    rep = np.full(len(vi), NONE, dtype=np.int64)
    sim = np.full(len(vi), np.nan, dtype=np.float32)
    for r, s in hits:                                      # earlier blocks first: their representatives come first
        take = (rep == NONE) & (r != NONE)
        rep[take], sim[take] = r[take], s[take]
    open_rows = np.flatnonzero(rep == NONE)
    s = vi[open_rows] @ vi[open_rows].T                    # (open, open) the block with itself
    local_rep, local_sim = _leaders_in_order(s, float(tau))
    matched = local_rep != NONE
    rep[open_rows[matched]] = i0 + open_rows[local_rep[matched]]
    sim[open_rows[matched]] = local_sim[matched]
    is_leader = np.zeros(len(vi), dtype=bool)
    is_leader[open_rows[~matched]] = True
    return rep, sim, is_leader


@numba.njit(cache=True)
def _leaders_in_order(s, tau):
    """Leader clustering of rows 0..n-1 given their (n, n) similarities: each row joins the earliest
    earlier leader it matches, else leads. Returns (leader row or -1, similarity to it)."""
    n = s.shape[0]
    rep = np.full(n, -1, dtype=np.int64)
    sim = np.full(n, np.nan, dtype=np.float32)
    leaders = np.empty(n, dtype=np.int64)
    n_leaders = 0
    for k in range(n):                                     # serial: row k depends on the rows before it
        for m in range(n_leaders):
            j = leaders[m]
            if s[k, j] >= tau:
                rep[k] = j
                sim[k] = s[k, j]
                break
        if rep[k] == -1:
            leaders[n_leaders] = k
            n_leaders += 1
    return rep, sim


def nearest_leader(vi: np.ndarray, vj: np.ndarray, settled_j: tuple, j0: int) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``vi``: (row number of the representative of block J it is most similar to, the
    earliest on a tie, or NONE when J has none; that similarity, -inf for NONE)."""
    leaders = np.flatnonzero(settled_j[2])
    if len(leaders) == 0:
        return np.full(len(vi), NONE, dtype=np.int64), np.full(len(vi), -np.inf, dtype=np.float32)
    s = vi @ vj[leaders].T                                 # (bi, representatives of J)
    col = s.argmax(axis=1)                                 # the first maximum: the earliest
    return (j0 + leaders[col]).astype(np.int64), s[np.arange(len(s)), col].astype(np.float32)


def best_leader(*hits: tuple) -> tuple[np.ndarray, np.ndarray]:
    """The ``nearest_leader`` results of every block, in block order, as one: the most similar
    representative, the earlier block on a tie."""
    rep, sim = hits[0][0].copy(), hits[0][1].copy()
    for r, s in hits[1:]:
        better = s > sim
        rep[better], sim[better] = r[better], s[better]
    return rep, sim


def join_groups(settled: list[tuple], nearest: list[tuple], tau: float) -> tuple[np.ndarray, np.ndarray]:
    """(representative of each row, similarity to it; itself and NaN for a representative) from the blocks'
    ``settle_block`` and ``best_leader`` results. A member's pass-1 representative stands when its nearest
    one's similarity came out below tau (round-off between two products of different shapes)."""
    first, sim = join_settled(settled, sum(len(r) for r, _, _ in settled))
    if not nearest:
        return first, sim
    near = np.concatenate([r for r, _ in nearest])
    near_sim = np.concatenate([s for _, s in nearest])
    take = (first != np.arange(len(first))) & (near_sim >= np.float64(tau))
    return np.where(take, near, first), np.where(take, near_sim, sim).astype(np.float32)


def join_settled(settled: list[tuple], n: int) -> tuple[np.ndarray, np.ndarray]:
    """The blocks' results as two length-N arrays; a representative's own row points at itself."""
    rep = np.concatenate([r for r, _, _ in settled]) if settled else np.zeros(0, np.int64)
    sim = np.concatenate([s for _, s, _ in settled]) if settled else np.zeros(0, np.float32)
    rep = np.where(rep == NONE, np.arange(n), rep)
    return rep, sim


def group_fields(rep: np.ndarray, sim: np.ndarray, ids: list, i: int) -> dict:
    """What ``dedupe --group`` adds to record ``i``: ``group`` (its representative's number),
    ``duplicate_of`` (the representative's id; None for a representative) and ``score`` (the similarity
    to it, as printed: 6 decimals; None for a representative)."""
    r = int(rep[i])
    if r == i:
        return {"group": r, "duplicate_of": None, "score": None}
    return {"group": r, "duplicate_of": ids[r], "score": round(float(sim[i]), 6)}


def nearest(v: np.ndarray, k: int, block: int = BLOCK) -> list[list[tuple[int, float]]]:
    """Each row's k most similar other rows, best first, computed block by block."""
    n = len(v)
    out = []
    if k < 1:
        return [[] for _ in range(n)]
    block = max(1, min(block, 2 ** 24 // max(n, 1)))             # a slice holds at most 64 MB
    for i0 in range(0, n, block):
        s = v[i0:i0 + block] @ v.T                                   # (bi, N)
        s[np.arange(len(s)), np.arange(i0, i0 + len(s))] = -np.inf   # not itself
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        for r in range(len(s)):
            cand = top[r][np.argsort(-s[r, top[r]], kind="stable")]
            out.append([(int(j), float(s[r, j])) for j in cand])
    return out


def neighbour_fields(neighbours: list[tuple[int, float]], ids: list) -> list[dict]:
    """What ``dedupe --top-k`` adds to a record as ``neighbours``: each neighbour's number, id and
    similarity (6 decimals), best first."""
    return [{"index": int(j), "id": ids[j], "similarity": round(float(s), 6)} for j, s in neighbours]


def size_report(rep: np.ndarray, tau: float, share: float = 0.01) -> tuple[str, str | None]:
    """(the group-size distribution as one line, a warning when one group holds more than ``share``)."""
    n = len(rep)
    sizes = np.bincount(rep, minlength=n)
    sizes = sizes[sizes > 0]
    edges = [(1, 1), (2, 2), (3, 5), (6, 10), (11, 100), (101, 1000), (1001, None)]
    parts = []
    for lo, hi in edges:
        k = int(((sizes >= lo) & (sizes <= (hi or n))).sum())
        if k:
            parts.append(f"{lo if hi == lo else f'{lo}-{hi}' if hi else f'{lo}+'}: {k}")
    largest = int(sizes.max()) if len(sizes) else 0
    line = f"group sizes {', '.join(parts)}; largest {largest} ({100 * largest / max(n, 1):.1f}% of {n})"
    warning = None
    if largest > max(share * n, 2):      # a pair is never a sign of a bad threshold, even among a few records
        warning = (f"one group holds {largest} of {n} records ({100 * largest / n:.1f}%): threshold {tau:.4f} "
                   f"is likely too low for this model; try a higher --threshold")
    return line, warning
