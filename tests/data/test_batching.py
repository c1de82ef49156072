"""Batching and padding: batch shapes, bucketing, fixed lengths, pairs, and the unpad round trip."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from seqtool.data.batching import batches, check_ids, pad, pad_batch, pad_records, seq_length, unpad
from seqtool.errors import DataError
from seqtool.data.vocab import build_vocab


def rec(n: int, **extra) -> dict:
    return {"ids": list(range(1, n + 1)), **extra}


def test_batches_of_consecutive_records_last_one_shorter():
    out = list(batches([rec(n, i=i) for i, n in enumerate([3, 1, 2, 5, 4])], batch_size=2))
    assert [[r["i"] for r in b] for b in out] == [[0, 1], [2, 3], [4]]


def test_bucket_sorts_by_length_within_a_window_of_batches():
    records = [rec(n, i=i) for i, n in enumerate([5, 1, 4, 2, 3, 3, 9, 1])]
    out = list(batches(records, batch_size=2, bucket=2))
    assert [[len(r["ids"]) for r in b] for b in out] == [[1, 2], [4, 5], [1, 3], [3, 9]]
    assert [r["i"] for r in out[2] + out[3]] == [7, 4, 5, 6]  # stable: equal lengths keep their order


def test_batches_are_read_lazily():
    def records():
        yield from (rec(1), rec(2))
        raise AssertionError("read past the first batch")

    assert len(next(batches(records(), batch_size=2))) == 2


def test_pad_to_the_longest_in_the_batch_with_mask_and_length():
    batch = [{"id": "a", "ids": [4, 5], "tag_ids": [1, 0]}, {"id": "b", "ids": [6, 7, 8], "tag_ids": [0, 0, 2]}]
    assert pad_batch(batch) == [
        {"id": "a", "ids": [4, 5, 0], "tag_ids": [1, 0, 0], "mask": [1, 1, 0], "length": 2},
        {"id": "b", "ids": [6, 7, 8], "tag_ids": [0, 0, 2], "mask": [1, 1, 1], "length": 3},
    ]
    assert batch[0] == {"id": "a", "ids": [4, 5], "tag_ids": [1, 0]}  # inputs untouched


def test_pad_to_a_fixed_length_truncates():
    assert pad_batch([rec(4), rec(1)], length=2) == [
        {"ids": [1, 2], "mask": [1, 1], "length": 2},
        {"ids": [1, 0], "mask": [1, 0], "length": 1},
    ]


def test_pairs_pad_each_side_to_its_own_longest():
    out = pad_batch([{"q1_ids": [3], "q2_ids": [4, 5, 6], "is_duplicate": 1},
                     {"q1_ids": [7, 8], "q2_ids": [9], "is_duplicate": 0}])
    assert out[0] == {"q1_ids": [3, 0], "q2_ids": [4, 5, 6], "is_duplicate": 1,
                      "q1_mask": [1, 0], "q1_length": 1, "q2_mask": [1, 1, 1], "q2_length": 3}
    assert out[1]["q2_ids"] == [9, 0, 0] and out[1]["q1_ids"] == [7, 8]
    assert seq_length(out[1]) == 3


def test_pad_records_numbers_batches():
    out = list(pad_records([rec(n) for n in [1, 2, 3]], batch_size=2))
    assert [r["batch"] for r in out] == [0, 0, 1]
    assert [len(r["ids"]) for r in out] == [2, 2, 3]


def test_pad_helper():
    assert pad([1, 2], 4) == [1, 2, 0, 0]
    assert pad([1, 2, 3], 2) == [1, 2]
    assert pad([1], 3, value=9) == [1, 9, 9]


@pytest.mark.parametrize("record, message", [
    ({"tokens": ["a"]}, 'no "ids", "q1_ids" or "q2_ids" to pad (run seqtool vocab first)'),
    ({"ids": "12"}, '"ids" must be a list of integers'),
    ({"ids": [1, "2"]}, '"ids" must be a list of integers'),
    ({"ids": [1, True]}, '"ids" must be a list of integers'),
    ({"ids": []}, '"ids" is empty'),
    ({"ids": [1, 2], "tag_ids": [0]}, '"tag_ids" has 1 items but "ids" has 2'),
    ({"ids": [1], "tag_ids": None}, '"tag_ids" must be a list of integers'),
])
def test_check_ids_rejects(record, message):
    with pytest.raises(DataError) as e:
        check_ids(record)
    assert str(e.value) == message


def test_padded_records_can_be_padded_again():
    once = list(pad_records([rec(1), rec(3), rec(2)], batch_size=3))
    twice = list(pad_records(map(check_ids, once), batch_size=1))
    assert twice == list(pad_records([rec(1), rec(3), rec(2)], batch_size=1))


# ---------------------------------------------------------------- round trip property

WORD = st.sampled_from(["a", "b", "c", "Ann", ".", ":)", "@x"])
TAG = st.sampled_from(["O", "B-PER", "I-PER"])


@st.composite
def tagged(draw) -> dict:
    n = draw(st.integers(1, 8))
    return {"tokens": draw(st.lists(WORD, min_size=n, max_size=n)),
            "tags": draw(st.lists(TAG, min_size=n, max_size=n))}


@given(st.lists(tagged(), min_size=1, max_size=12), st.integers(1, 5), st.integers(0, 3))
def test_tokens_ids_padded_unpadded_round_trip(records, batch_size, bucket):
    vocab = build_vocab(records)
    encoded = [vocab.encode({"id": i, **r}) for i, r in enumerate(records)]
    padded = list(pad_records(map(check_ids, encoded), batch_size, bucket))
    for batch in batches(padded, batch_size):  # the stream comes out batch after batch
        assert len({len(r["ids"]) for r in batch}) == 1 and len({r["batch"] for r in batch}) == 1
    for r in padded:
        assert len(r["ids"]) == len(r["tag_ids"]) == len(r["mask"]) and sum(r["mask"]) == r["length"]
    back = sorted((unpad(r) for r in padded), key=lambda r: r["id"])  # --bucket reorders
    assert back == encoded
    for r in back:
        assert [vocab.words.names[i] for i in r["ids"]] == r["tokens"]
        assert [vocab.tags.names[i] for i in r["tag_ids"]] == r["tags"]
