"""The training loop (used by train.py, the `train` stage): epochs of shuffled length-bucketed batches, clipping,
the optimiser, dev scoring, early stopping on the best dev score, a time cap
and per-epoch checkpoints. Task-specific work is in tasks.py; this module
only knows "a step returns a loss" and "dev returns a score".
"""
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from seqtool.model import optim
from seqtool.data.dataset import Batch, TaskData
from seqtool.model.defaults import TRAIN_DEFAULTS  # noqa: F401 (re-exported; the table lives there)
from seqtool.model.layers import Layer
from seqtool.model.tasks import train_step



@dataclass
class EpochRecord:
    epoch: int
    loss: float
    tokens_per_s: float
    grad_norm: float          # mean pre-clip global norm over the epoch's steps
    max_grad_norm: float
    seconds: float
    dev: dict = field(default_factory=dict)
    skipped_steps: int = 0    # steps whose gradient was NaN/inf, not applied
    clipped_steps: int = 0    # steps whose global norm was above --clip-norm (scaled down)
    lr: float = 0.0           # the learning rate of the epoch (after --lr-decay)


@dataclass
class FitResult:
    history: list
    best_epoch: int
    best_score: float
    best_weights: dict
    stopped: str              # "epochs", "patience", "max_time"
    seconds: float


@dataclass
class Job:
    """What ``fit`` trains and how: the model and its data, the options (TRAIN_DEFAULTS' keys, plus
    ``margin`` for Siamese models), and what to call on the way."""

    task: str
    model: Layer
    data: TaskData                       # batch_order() gives an epoch's batches, batch() builds one
    cfg: dict
    dev: Callable[[Layer], tuple] | None = None          # model -> (score to maximise, metrics)
    after_epoch: Callable[["TrainingState"], None] | None = None   # the checkpoint hook
    progress: Callable | None = None     # progress(EpochRecord | None, step info | None)
    clock: Callable[[], float] = time.perf_counter   # times an epoch's tokens/s (the stage's leaves out compiling)


@dataclass
class TrainingState:
    """Everything a resumed run needs, saved and restored whole: the epochs done, the best so far, the
    history, the optimiser's moments and the random generator (the weights are the model's own)."""

    optimizer: object
    rng: np.random.Generator
    epoch: int = 0                       # epochs finished
    best_epoch: int = -1
    best_score: float = -np.inf
    best_weights: dict | None = None
    history: list = field(default_factory=list)

    @classmethod
    def start(cls, model: Layer, cfg: dict) -> "TrainingState":
        return cls(make_optimizer(model, cfg), np.random.default_rng(cfg["seed"]), best_weights=snapshot(model))

    def to_checkpoint(self, model: Layer, kept_rows: dict | None = None) -> dict:
        """A JSON-and-arrays dict for modelio.save_checkpoint (the model's weights as they are now).

        ``kept_rows`` {parameter name: row indices}: of those (large) tables only these rows are saved, the
        rows that training can change (a 400k-word vectors table trained on 20k words: 4 MB, not 80 MB, per
        copy; the weights, the best weights and each optimiser moment are copies). ``from_checkpoint`` takes
        the other rows from the model it loads into, which must hold them as they were at the start.
        """
        kept_rows = kept_rows or {}
        names = list(model.named_params())
        moments = self.optimizer.MOMENTS          # one array per parameter: cut like the weights
        opt = {key: _kept(dict(zip(names, arrays)), kept_rows, list_of=names) if key in moments and arrays else arrays
               for key, arrays in self.optimizer.state_arrays().items()}
        return {"epoch": self.epoch, "weights": _kept(model.named_params(), kept_rows), "best_epoch": self.best_epoch,
                "best_score": float(self.best_score) if np.isfinite(self.best_score) else None,  # no -Infinity
                "best_weights": _kept(self.best_weights, kept_rows), "kept_rows": dict(kept_rows),
                "opt": {"kind": type(self.optimizer).__name__, **opt},
                "rng": self.rng.bit_generator.state, "history": [vars(r) for r in self.history]}

    @classmethod
    def from_checkpoint(cls, saved: dict, model: Layer, cfg: dict) -> "TrainingState":
        """The state of ``saved`` (load_checkpoint's dict), its weights put into ``model`` (which holds the rows a
        checkpoint with ``kept_rows`` left out as they were at the start: their moments were zero)."""
        kept = saved.get("kept_rows") or {}
        start = {name: array.copy() for name, array in model.named_params().items() if name in kept}
        restore(model, _whole(saved["weights"], kept, start))
        state = cls.start(model, cfg)
        names = list(model.named_params())
        zeros = {name: np.zeros_like(array) for name, array in start.items()}
        moments = state.optimizer.MOMENTS
        state.optimizer.load_state_arrays({
            key: list(_whole(dict(zip(names, arrays)), kept, zeros).values()) if key in moments and arrays
            else arrays for key, arrays in saved["opt"].items() if key != "kind"})
        state.rng.bit_generator.state = saved["rng"]
        score = saved["best_score"]
        state.epoch, state.best_epoch = int(saved["epoch"]), int(saved["best_epoch"])
        state.best_score = -np.inf if score is None else float(score)
        state.best_weights = _whole(saved["best_weights"], kept, start)
        state.history = [EpochRecord(**r) for r in saved.get("history", [])]
        return state


def _kept(arrays: dict, kept_rows: dict, list_of: list | None = None):
    """``arrays`` with the tables of ``kept_rows`` cut to those rows (a list in ``list_of`` order if given)."""
    out = {name: array[kept_rows[name]] if name in kept_rows else array for name, array in arrays.items()}
    return [out[name] for name in list_of] if list_of is not None else out


def _whole(arrays: dict, kept_rows: dict, start: dict) -> dict:
    """``_kept``'s inverse: each cut table put back into a copy of its ``start`` array."""
    out = dict(arrays)
    for name, rows in kept_rows.items():
        table = start[name].copy()
        table[np.asarray(rows, dtype=np.int64)] = arrays[name]
        out[name] = table
    return out


def make_optimizer(model: Layer, cfg: dict):
    params = model.param_list()
    if cfg["optimizer"] == "adam":
        return optim.Adam(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    return optim.SGD(params, lr=cfg["lr"], momentum=0.9, weight_decay=cfg["weight_decay"])


def snapshot(model: Layer) -> dict:
    """A copy of every parameter, by qualified name."""
    return {k: v.copy() for k, v in model.named_params().items()}


def restore(model: Layer, weights: dict) -> None:
    for name, layer, local in model.walk():
        layer.params[local][...] = weights[name]


@contextmanager
def deferred_interrupt():
    """Ctrl-C is noted and raised between steps, never inside a compiled kernel.

    A KeyboardInterrupt raised while numba code runs surfaces as a SystemError
    ("returned a result with an exception set"); deferring it to the step
    boundary turns it into a clean interrupt the caller can checkpoint.
    Yields a function that raises KeyboardInterrupt if Ctrl-C was pressed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    pressed = []

    def note(signum, frame):
        if pressed:                      # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        pressed.append(signum)

    old = signal.signal(signal.SIGINT, note)

    def check():
        if pressed:
            raise KeyboardInterrupt

    try:
        yield check
    finally:
        signal.signal(signal.SIGINT, old)


def fit(job: Job, state: TrainingState | None = None) -> FitResult:
    """Train ``job.model`` in place from ``state`` (a fresh one when None) and return its history and best
    weights. ``state`` is updated after every epoch, so a caller holding it can checkpoint an interrupted
    run (KeyboardInterrupt, raised between steps, propagates)."""
    cfg, model = job.cfg, job.model
    state = state if state is not None else TrainingState.start(model, cfg)
    t_start = time.perf_counter()
    stopped, bad_epochs = "epochs", 0
    with deferred_interrupt() as check_interrupt:
        for epoch in range(state.epoch, cfg["epochs"]):
            state.optimizer.lr = cfg["lr"] / (1.0 + cfg["lr_decay"] * epoch)
            rec, out_of_time = _run_epoch(job, state, epoch, t_start, check_interrupt)
            score = -rec.loss
            if job.dev is not None:
                score, rec.dev = job.dev(model)
            state.history.append(rec)
            state.epoch = epoch + 1
            if score > state.best_score:
                state.best_epoch, state.best_score, state.best_weights = epoch + 1, score, snapshot(model)
                bad_epochs = 0
            else:
                bad_epochs += 1
            if job.progress is not None:
                job.progress(rec, None)
            if job.after_epoch is not None:
                job.after_epoch(state)
            if out_of_time:
                stopped = "max_time"
                break
            if cfg["patience"] and bad_epochs >= cfg["patience"]:
                stopped = "patience"
                break
    return FitResult(list(state.history), state.best_epoch, float(state.best_score), state.best_weights,
                     stopped, time.perf_counter() - t_start)


def _run_epoch(job: Job, state: TrainingState, epoch: int, t_start: float, check_interrupt):
    """One epoch's steps: (its EpochRecord without dev metrics, whether --max-time ran out in it)."""
    cfg, model, opt, rng = job.cfg, job.model, state.optimizer, state.rng
    t0 = job.clock()
    losses, norms, n_tok, skipped, clipped = [], [], 0, 0, 0
    index_batches = job.data.batch_order(cfg["batch_size"], rng)
    out_of_time = False
    for k, idx in enumerate(index_batches):
        batch = _training_batch(job.data, idx, cfg["word_dropout"], rng)
        model.zero_grads()
        losses.append(train_step(job.task, model, batch, rng, cfg.get("margin", 0.25)))
        grads, rows = model.grad_list(), model.grad_rows()
        if cfg["clip_value"]:
            optim.clip_by_value(grads, cfg["clip_value"], rows)
        norm = optim.clip_by_global_norm(grads, cfg["clip_norm"], rows) if cfg["clip_norm"] \
            else optim.global_norm(grads, rows)
        norms.append(norm)
        clipped += bool(cfg["clip_norm"] and np.isfinite(norm) and norm > cfg["clip_norm"])
        if np.isfinite(norm):        # a NaN/inf gradient would poison every weight: skip the step
            opt.step(grads, rows)
        else:
            skipped += 1
        n_tok += batch.n_tokens
        check_interrupt()
        if job.progress is not None:
            job.progress(None, dict(epoch=epoch, step=k + 1, steps=len(index_batches), loss=losses[-1],
                                    grad_norm=norm))
        if cfg["max_time"] and time.perf_counter() - t_start > cfg["max_time"]:
            out_of_time = True
            break
    secs = job.clock() - t0
    rec = EpochRecord(epoch + 1, float(np.mean(losses)) if losses else float("nan"), n_tok / max(secs, 1e-9),
                      float(np.mean(norms)) if norms else 0.0, float(np.max(norms)) if norms else 0.0, secs)
    rec.skipped_steps, rec.clipped_steps, rec.lr = skipped, clipped, float(opt.lr)
    return rec, out_of_time


def _training_batch(data: TaskData, idx: np.ndarray, rate: float, rng: np.random.Generator) -> Batch:
    """The batch of rows ``idx``, with word dropout applied to its word ids."""
    batch = data.batch(idx)
    if rate > 0:
        batch.ids = word_dropout(batch.ids, rate, rng)
        if batch.ids2 is not None:
            batch.ids2 = word_dropout(batch.ids2, rate, rng)
    return batch


def word_dropout(ids: np.ndarray, rate: float, rng: np.random.Generator, unk_id: int = 1) -> np.ndarray:
    """Replace a fraction ``rate`` of token ids by <UNK> (training only), so the model
    learns what to do with words it has never seen."""
    if rate <= 0:
        return ids
    out = ids.copy()
    out[(rng.random(len(ids)) < rate) & (ids > 1)] = unk_id
    return out
