"""data/dataset.py: records as compact arrays (Ragged, TaskData, collect) and the batches cut from them."""
import numpy as np
import pytest

from seqtool.data.dataset import Ragged, TaskData, collect
from seqtool.errors import DataError


def test_ragged_from_flat_and_appended_agree():
    seqs = [[3, 4], [5], [6, 7, 8]]
    a = Ragged(seqs).finish()
    b = Ragged.from_flat(np.array([3, 4, 5, 6, 7, 8]), [2, 1, 3])
    assert [a[i].tolist() for i in range(3)] == [b[i].tolist() for i in range(3)] == seqs
    assert a.lengths.tolist() == [2, 1, 3]


def test_plain_batches_are_in_order_and_shuffled_ones_cover_every_record_once():
    data = TaskData("tagger", Ragged([[1] * (k % 7 + 1) for k in range(50)]).finish())
    plain = data.batch_order(8, None)
    assert np.concatenate(plain).tolist() == list(range(50))
    shuffled = data.batch_order(8, np.random.default_rng(0))
    order = np.concatenate(shuffled).tolist()
    assert sorted(order) == list(range(50)) and order != list(range(50))


def test_rows_with_clusters_never_share_a_batch_with_their_cluster():
    # declared Siamese rows: any task name, the clusters alone decide the batching
    clusters = np.array([0, 0, 0, 1, 2, 3, 4, 5, 6, 7])
    data = TaskData("siamese", Ragged([[k + 2] for k in range(10)]).finish(), labels=np.ones(10, np.int64),
                    tokens2=Ragged([[k + 2] for k in range(10)]).finish(), clusters=clusters)
    for seed in range(5):
        for batch in data.batch_order(4, np.random.default_rng(seed)):
            assert len(set(clusters[batch].tolist())) == len(batch)


def test_collect_names_the_record_that_lacks_what_the_task_needs():
    with pytest.raises(DataError, match="record 2 has no \"tags\""):
        collect([{"ids": [2, 3], "tag_ids": [1, 1]}, {"ids": [4]}], "tagger", "train.jsonl")
    with pytest.raises(DataError, match="record 1 is not a pair"):
        collect([{"ids": [2]}], "siamese")
    data = collect([{"ids": [2, 3, 0], "length": 2, "label_id": 1}], "classifier")   # padding cut
    assert data.tokens[0].tolist() == [2, 3] and data.labels.tolist() == [1]
