"""model/fit.py: the training loop over a declared Job, and the TrainingState a resumed run restores whole."""
import numpy as np

from seqtool.data.dataset import Ragged, TaskData
from seqtool.model import modelio
from seqtool.model.fit import TRAIN_DEFAULTS, Job, TrainingState, fit
from seqtool.model.tasks import ARCH_DEFAULTS, build_model


def tagging_job(**overrides) -> Job:
    rng = np.random.default_rng(0)
    seqs = [rng.integers(2, 12, size=int(n)) for n in rng.integers(2, 9, size=60)]
    tags = [(s % 3).astype(np.int64) for s in seqs]                     # a tag each word always has
    data = TaskData("tagger", Ragged(seqs).finish(), Ragged(tags).finish())
    cfg = dict(ARCH_DEFAULTS["tagger"], **TRAIN_DEFAULTS)
    cfg.update(task="tagger", crf=False, char=False, shape_dim=0, hidden=8, embed=8, epochs=3, batch_size=8,
               lr=0.02)
    cfg.update(overrides)
    return Job("tagger", build_model(cfg, 12, 3, seed=0), data, cfg)


def test_state_round_trips_through_a_checkpoint(tmp_path):
    job = tagging_job()
    state = TrainingState.start(job.model, job.cfg)
    fit(job, state)
    modelio.save_checkpoint(tmp_path / "ckpt", state.to_checkpoint(job.model))
    fresh = tagging_job()
    restored = TrainingState.from_checkpoint(modelio.load_checkpoint(tmp_path / "ckpt"), fresh.model, fresh.cfg)
    assert (restored.epoch, restored.best_epoch, restored.best_score) == (3, state.best_epoch, state.best_score)
    assert restored.rng.bit_generator.state == state.rng.bit_generator.state
    for a, b in zip(restored.optimizer.m + restored.optimizer.v, state.optimizer.m + state.optimizer.v):
        assert np.array_equal(a, b)
    assert restored.optimizer.t == state.optimizer.t and [r.loss for r in restored.history] == \
        [r.loss for r in state.history]
    for name, w in job.model.named_params().items():
        assert np.array_equal(fresh.model.named_params()[name], w)


def test_after_epoch_sees_each_epoch_and_patience_stops():
    seen = []
    job = tagging_job(epochs=10, patience=2)
    job.dev = lambda model: (0.5, {"f1": 0.5})                         # never better after the first epoch
    job.after_epoch = lambda state: seen.append((state.epoch, state.best_epoch))
    result = fit(job)
    assert result.stopped == "patience" and seen == [(1, 1), (2, 1), (3, 1)]
    assert result.best_epoch == 1 and [r.dev for r in result.history] == [{"f1": 0.5}] * 3


def test_loss_falls_and_a_non_finite_gradient_step_is_skipped():
    job = tagging_job(epochs=4)
    result = fit(job)
    assert result.history[-1].loss < result.history[0].loss and result.stopped == "epochs"
    broken = tagging_job(epochs=1)
    broken.model.named_params()[next(iter(broken.model.named_params()))][...] = np.nan
    before = {k: v.copy() for k, v in broken.model.named_params().items()}
    record = fit(broken).history[0]
    assert record.skipped_steps == len(broken.data.batch_order(8, None))   # every step had a NaN gradient
    after = broken.model.named_params()
    assert all(np.array_equal(after[k], v, equal_nan=True) for k, v in before.items())
