"""model/tasks.py: each task's model built from its options, and the combinations refused with the option's name."""
import numpy as np
import pytest

from seqtool.data.dataset import Ragged, TaskData
from seqtool.errors import UsageError
from seqtool.model.fit import TRAIN_DEFAULTS
from seqtool.model.tasks import ARCH_DEFAULTS, CELLS, build_model, check_arch, encode, model_input, \
    predict_logprobs, predict_tag_ids


def config(task: str, **kw) -> dict:
    cfg = dict(ARCH_DEFAULTS[task], **TRAIN_DEFAULTS)
    cfg.update(task=task, hidden=6, embed=4)
    cfg.update(kw)
    return cfg


@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_builds_a_classifier_that_gives_probabilities(cell):
    model = build_model(config("classifier", cell=cell), n_vocab=10, n_out=3, seed=0)
    data = TaskData("classifier", Ragged([[2, 3, 4], [5]]).finish())
    b = data.batch(np.arange(2))
    probs = np.exp(predict_logprobs(model, b.ids, b.packing))
    assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_tagger_and_siamese_outputs_have_their_shapes():
    tagger = build_model(config("tagger", char=False, shape_dim=0), 10, 5, seed=0,
                         tag_names=["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    b = TaskData("tagger", Ragged([[2, 3, 4], [5, 6]]).finish()).batch(np.arange(2))
    best, prob = predict_tag_ids(tagger, model_input(tagger, b), b.packing)
    assert best.shape == prob.shape == (5,) and set(best.tolist()) <= set(range(5))
    siamese = build_model(config("siamese"), 10, 1, seed=0)
    v = encode(siamese, b.ids, b.packing)
    assert v.shape[0] == 2 and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("change,message", [
    (dict(cell="lru"), "unknown cell 'lru'"),
    (dict(task="tagger", cell="none"), "--cell none"),
    (dict(hidden=0), "--hidden must be at least 1"),
    (dict(dropout=1.0), "--dropout must be in"),
    (dict(task="classifier", crf=True), "--crf, --char and --shape-dim are for --task tagger"),
    (dict(task="tagger", char=True, char_window=4), "--char-window must be odd"),
])
def test_impossible_combinations_name_the_option(change, message):
    cfg = config(change.get("task", "classifier"))
    cfg.update(change)
    with pytest.raises(UsageError, match=message):
        check_arch(cfg)
