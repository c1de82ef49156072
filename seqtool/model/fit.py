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
from seqtool.data.dataset import Batch
from seqtool.model.layers import Layer
from seqtool.model.tasks import train_step

TRAIN_DEFAULTS = dict(optimizer="adam", lr=2e-3, clip_norm=5.0, clip_value=None, epochs=30, patience=5,
                      batch_size=32, seed=0, max_time=None, word_dropout=0.05, weight_decay=0.0,
                      lr_decay=0.0, hard_negatives=False)


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
    stopped: str              # "epochs", "patience", "max_time", "interrupted"
    seconds: float


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


def fit(task: str, model: Layer, batches_for_epoch: Callable[[int, np.random.Generator], list],
        make: Callable[[np.ndarray, np.random.Generator], Batch], evaluate_dev: Callable[[Layer], tuple] | None,
        cfg: dict, progress=None, on_epoch_end: Callable | None = None, start_epoch: int = 0,
        opt=None, rng: np.random.Generator | None = None, best: tuple | None = None) -> FitResult:
    """Train ``model`` in place and return its history and best weights.

    batches_for_epoch(epoch, rng) -> list of index arrays; make(indices, rng) -> Batch.
    evaluate_dev(model) -> (score, metrics dict); higher score is better.
    progress(record | None, step info) reports to the user (tqdm in the CLI).
    on_epoch_end(epoch, model, opt, rng, best) is the checkpoint hook.
    """
    rng = rng if rng is not None else np.random.default_rng(cfg["seed"])
    opt = opt if opt is not None else make_optimizer(model, cfg)
    history: list[EpochRecord] = []
    best_epoch, best_score, best_weights = best if best is not None else (-1, -np.inf, snapshot(model))
    t_start = time.perf_counter()
    stopped, bad_epochs = "epochs", 0
    base_lr = cfg["lr"]
    with deferred_interrupt() as check_interrupt:
        for epoch in range(start_epoch, cfg["epochs"]):
            opt.lr = base_lr / (1.0 + cfg["lr_decay"] * epoch)
            t0 = time.perf_counter()
            losses, norms, n_tok, skipped, clipped = [], [], 0, 0, 0
            index_batches = batches_for_epoch(epoch, rng)
            for k, idx in enumerate(index_batches):
                batch = make(idx, rng)
                model.zero_grads()
                losses.append(train_step(task, model, batch, rng, cfg.get("margin", 0.25)))
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
                if progress is not None:
                    progress(None, dict(epoch=epoch, step=k + 1, steps=len(index_batches), loss=losses[-1],
                                        grad_norm=norm))
                if cfg["max_time"] and time.perf_counter() - t_start > cfg["max_time"]:
                    stopped = "max_time"
                    break
            secs = time.perf_counter() - t0
            rec = EpochRecord(epoch + 1, float(np.mean(losses)) if losses else float("nan"),
                              n_tok / max(secs, 1e-9), float(np.mean(norms)) if norms else 0.0,
                              float(np.max(norms)) if norms else 0.0, secs)
            rec.skipped_steps, rec.clipped_steps, rec.lr = skipped, clipped, float(opt.lr)
            score = -rec.loss
            if evaluate_dev is not None:
                score, rec.dev = evaluate_dev(model)
            history.append(rec)
            if score > best_score:
                best_epoch, best_score, best_weights, bad_epochs = epoch + 1, score, snapshot(model), 0
            else:
                bad_epochs += 1
            if progress is not None:
                progress(rec, None)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, model, opt, rng, (best_epoch, best_score, best_weights), history)
            if stopped == "max_time":
                break
            if cfg["patience"] and bad_epochs >= cfg["patience"]:
                stopped = "patience"
                break
    return FitResult(history, best_epoch, float(best_score), best_weights, stopped,
                     time.perf_counter() - t_start)


def word_dropout(ids: np.ndarray, rate: float, rng: np.random.Generator, unk_id: int = 1) -> np.ndarray:
    """Replace a fraction ``rate`` of token ids by <UNK> (training only), so the model
    learns what to do with words it has never seen."""
    if rate <= 0:
        return ids
    out = ids.copy()
    out[(rng.random(len(ids)) < rate) & (ids > 1)] = unk_id
    return out
