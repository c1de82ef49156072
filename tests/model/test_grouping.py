"""Leader grouping (model/grouping.py): groups are balls around a representative, never chains."""
import numpy as np
import pytest

from seqtool.model.grouping import find_groups, join_groups, size_report


def unit(rows) -> np.ndarray:
    v = np.asarray(rows, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def leader_oracle(v: np.ndarray, tau: float):
    """Leader grouping written pair by pair, the slow way: representatives in input order, then every
    other record to its most similar representative, the earliest on a tie."""
    s = v.astype(np.float64) @ v.T.astype(np.float64)
    leaders = []
    for i in range(len(v)):
        if not any(s[i, j] >= tau for j in leaders):
            leaders.append(i)
    rep = []
    for i in range(len(v)):
        rep.append(i if i in leaders else max(leaders, key=lambda j: (s[i, j], -j)))
    return np.array(rep)


def test_a_chain_does_not_join_its_ends():
    # A~B (cos 0.94), B~C (0.94), A~C only 0.77: connected components put all three together
    a, b, c = [1, 0], [np.cos(0.35), np.sin(0.35)], [np.cos(0.70), np.sin(0.70)]
    v = unit([a, b, c])
    assert v[0] @ v[1] >= 0.9 and v[1] @ v[2] >= 0.9 and v[0] @ v[2] < 0.9
    rep, sim = find_groups(v, 0.9)
    assert rep.tolist() == [0, 0, 2]                   # C starts its own group: it does not match A
    assert np.isnan(sim[0]) and sim[1] == pytest.approx(v[0] @ v[1]) and np.isnan(sim[2])


def angles(*radians) -> np.ndarray:
    return unit([[np.cos(a), np.sin(a)] for a in radians])


def test_each_record_joins_the_representative_it_is_most_similar_to():
    # D (0.42) matches both representatives A (0) and C (0.70) and is closer to C; E (0.40) matches A before
    # C is chosen, and is still closer to C, which comes after it in the input
    v = angles(0, 0.35, 0.70, 0.42, 0.40)
    rep, sim = find_groups(v, 0.9)
    assert rep.tolist() == [0, 0, 2, 2, 2]
    assert sim[3] == pytest.approx(np.cos(0.28)) and sim[4] == pytest.approx(np.cos(0.30))


def test_a_tie_between_representatives_goes_to_the_earliest():
    # B sits exactly halfway between A and C (both representatives): it joins the earlier one
    v = unit([[1, 0], [0, 1], [1, 1]])
    assert v[2] @ v[0] == v[2] @ v[1] and v[0] @ v[1] < 0.7 <= v[2] @ v[0]
    assert find_groups(v, 0.7)[0].tolist() == [0, 1, 0]
    assert find_groups(v[[1, 0, 2]], 0.7)[0].tolist() == [0, 1, 0]
    assert find_groups(v, 0.7, block=1)[0].tolist() == [0, 1, 0]          # across blocks too


def test_a_member_keeps_its_first_representative_when_round_off_puts_the_nearest_below_tau():
    # rows 0 and 2 represent; row 1 matched 0 at 0.9 in pass 1, and pass 2's product gave 0 (its nearest)
    # 0.8999999 and 2 less: it stays with 0 and the score it had
    settled = [(np.array([-1, 0, -1]), np.array([np.nan, 0.9, np.nan], np.float32), np.array([True, False, True]))]
    nearest = [(np.array([0, 0, 2]), np.array([1.0, 0.8999999, 1.0], np.float32))]
    rep, sim = join_groups(settled, nearest, 0.9)
    assert rep.tolist() == [0, 0, 2] and sim[1] == np.float32(0.9)
    nearest = [(np.array([0, 2, 2]), np.array([1.0, 0.95, 1.0], np.float32))]
    rep, sim = join_groups(settled, nearest, 0.9)
    assert rep.tolist() == [0, 2, 2] and sim[1] == np.float32(0.95) and np.isnan(sim[[0, 2]]).all()


@pytest.mark.parametrize("block", [1, 5, 16, 2048])
def test_blocks_give_the_oracle_and_every_member_matches_its_representative(block):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(30, 6))
    v = unit(centres[rng.integers(30, size=300)] + 0.6 * rng.normal(size=(300, 6)))   # overlapping clouds
    tau = 0.8
    rep, sim = find_groups(v, tau, block=block)
    assert np.array_equal(rep, leader_oracle(v, tau))
    members = np.flatnonzero(rep != np.arange(len(v)))
    assert len(members) > 100 and len(set(rep.tolist())) > 20           # the test means something
    assert (rep[rep] == rep).all()                                      # representatives lead themselves
    assert (rep[members] > members).any()                               # some joined a later, nearer one
    exact = np.einsum("ij,ij->i", v[members].astype(np.float64), v[rep[members]].astype(np.float64))
    assert (sim[members] >= tau).all() and np.allclose(sim[members], exact, atol=1e-5)
    assert np.isnan(sim[rep == np.arange(len(v))]).all()


def test_connected_components_would_chain_these_but_leaders_do_not():
    # a long path of small steps: every neighbour matches, the ends are opposite
    angles = np.linspace(0, np.pi, 200)
    v = unit(np.stack([np.cos(angles), np.sin(angles)], axis=1))
    rep, sim = find_groups(v, 0.95, block=32)
    ball = int(np.arccos(0.95) / (angles[1] - angles[0])) + 1      # points within 0.95 of a representative
    assert np.bincount(rep).max() == ball and len(set(rep.tolist())) > 200 / ball - 1
    assert (sim[rep != np.arange(200)] >= 0.95).all()


MEMORY_SCRIPT = """
import resource, sys
import numpy as np
from seqtool.model.grouping import find_groups
n, d, size = 60000, 16, 20
rng = np.random.default_rng(0)
centres = rng.normal(size=(n // size, d))
v = np.repeat(centres, size, axis=0) + 0.05 * rng.normal(size=(n, d))   # 3,000 planted groups of 20
v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)[rng.permutation(n)]
find_groups(v[:3000], 0.9, block=2048)                                     # compile and warm up
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rep, score = find_groups(v, 0.9, block=2048)
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
members = int((rep != np.arange(n)).sum())
print(grown, len(set(rep.tolist())), members, float(np.nanmin(score)))
"""


def test_memory_stays_bounded_while_most_rows_join_a_group():
    # 60,000 rows in 3,000 planted groups, at a threshold where ~57,000 rows join one: the full similarity
    # matrix would be 14 GB in float32. A process of its own, so ru_maxrss is this search's high-water mark.
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT], capture_output=True, text=True, check=True)
    grown_mb, groups, members, lowest = run.stdout.split()
    assert float(grown_mb) < 400, run.stdout
    assert 2900 <= int(groups) <= 3300 and int(members) > 50000      # the joining was exercised, not skipped
    assert float(lowest) >= 0.9                                        # every member matches its leader


def test_size_report_shows_the_distribution_and_warns_on_a_giant_group():
    rep = np.array([0] * 50 + list(range(50, 100)) + [100, 100, 102, 102, 102])
    line, warning = size_report(rep, 0.5)
    assert line == "group sizes 1: 50, 2: 1, 3-5: 1, 11-100: 1; largest 50 (47.6% of 105)"
    assert warning == ("one group holds 50 of 105 records (47.6%): threshold 0.5000 is likely too low for this "
                       "model; try a higher --threshold")
    line, warning = size_report(np.arange(300), 0.5)
    assert line == "group sizes 1: 300; largest 1 (0.3% of 300)" and warning is None
    assert size_report(np.array([0, 0, 2]), 0.5)[1] is None      # a pair among three is not a giant group
