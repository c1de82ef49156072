"""The three jobs as models: build one from a config, train it a step, predict with it.

    tagger      Embedding > Dropout > (bi)RNN stack > Dropout > Dense  -> per-token log-softmax
    classifier  Embedding > Dropout > [RNN stack] > Pool > Dropout > Dense -> softmax per sequence
                (cell "none": the seed's Embedding > Mean > Dense)
    siamese     Embedding > Dropout > RNN stack > Pool(mean) > L2Normalize, one encoder for both sides

A model's architecture is fully described by its config dict (saved as
config.json), so loading rebuilds it and fills in the weights by name.
"""
import numpy as np

from seqtool.dataset import Batch
from seqtool.errors import UsageError
from seqtool.kernels.loss import log_softmax, softmax_xent, triplet_loss
from seqtool.layers import Context, Dense, Dropout, Embedding, L2Normalize, Layer, Pool, Serial, Stack

TASKS = ("tagger", "classifier", "siamese")
CELLS = ("rnn", "gru", "lstm", "none")

# Architecture options and their defaults per task (training options live in train.py).
ARCH_DEFAULTS = {
    "tagger": dict(cell="lstm", bidirectional=True, layers=1, embed=100, hidden=128, dropout=0.5,
                   activation="tanh", residual=False, pool="mean", margin=0.25),
    "classifier": dict(cell="lstm", bidirectional=False, layers=1, embed=64, hidden=64, dropout=0.3,
                       activation="tanh", residual=False, pool="mean", margin=0.25),
    "siamese": dict(cell="lstm", bidirectional=False, layers=1, embed=128, hidden=128, dropout=0.2,
                    activation="tanh", residual=False, pool="mean", margin=0.25),
}


def check_arch(cfg: dict) -> None:
    """Refuse combinations that cannot be built, with the option's name."""
    if cfg["task"] not in TASKS:
        raise UsageError(f"unknown task {cfg['task']!r}; expected one of {', '.join(TASKS)}")
    if cfg["cell"] not in CELLS:
        raise UsageError(f"unknown cell {cfg['cell']!r}; expected one of {', '.join(CELLS)}")
    if cfg["cell"] == "none" and cfg["task"] != "classifier":
        raise UsageError("--cell none (embedding mean) is only for --task classifier")
    for key in ("layers", "embed", "hidden"):
        if int(cfg[key]) < 1:
            raise UsageError(f"--{key} must be at least 1")
    if not 0.0 <= float(cfg["dropout"]) < 1.0:
        raise UsageError("--dropout must be in [0, 1)")


def build_model(cfg: dict, n_vocab: int, n_out: int, seed: int) -> Layer:
    """A freshly initialised model for ``cfg`` (task + architecture options)."""
    check_arch(cfg)
    rng = np.random.default_rng(seed)
    E, H, p = int(cfg["embed"]), int(cfg["hidden"]), float(cfg["dropout"])
    width = H * (2 if cfg["bidirectional"] else 1)
    layers: list[Layer] = [Embedding(n_vocab, E, pad_id=0, rng=rng)]
    if p > 0:
        layers.append(Dropout(p))
    if cfg["cell"] != "none":
        layers.append(Stack(cfg["cell"], E, H, depth=int(cfg["layers"]), bidirectional=bool(cfg["bidirectional"]),
                            dropout=p, residual=bool(cfg["residual"]), activation=cfg["activation"], rng=rng))
    else:
        width = E
    task = cfg["task"]
    if task == "tagger":
        layers += ([Dropout(p)] if p > 0 else []) + [Dense(width, n_out, rng=rng)]
    elif task == "classifier":
        layers.append(Pool(cfg["pool"], bidirectional=bool(cfg["bidirectional"]) and cfg["cell"] != "none"))
        layers += ([Dropout(p)] if p > 0 else []) + [Dense(width, n_out, rng=rng)]
    else:
        layers += [Pool("mean"), L2Normalize()]
    return Serial(*layers)


def set_weights(model: Layer, weights: dict) -> None:
    """Fill a freshly built model's parameters from a saved name -> array dict."""
    have = model.named_params()
    missing = sorted(set(have) - set(weights))
    extra = sorted(set(weights) - set(have))
    if missing or extra:
        raise UsageError(f"weights do not match the model's architecture (missing {missing[:3]}, "
                         f"unexpected {extra[:3]})")
    for name, layer, local in model.walk():
        src = weights[name]
        if src.shape != layer.params[local].shape:
            raise UsageError(f"weight {name} has shape {src.shape}, the model needs {layer.params[local].shape}")
        layer.params[local][...] = src


# ---------------------------------------------------------------- one training step per task

def train_step(task: str, model: Layer, batch: Batch, rng: np.random.Generator, margin: float = 0.25) -> float:
    """Forward, loss and backward for one batch; gradients accumulate in the model. Returns the loss."""
    if task == "siamese":
        return _siamese_step(model, batch, rng, margin)
    y, backward = model(batch.ids, Context(batch.packing, rng), train=True)
    target = batch.tag_ids if task == "tagger" else batch.labels
    loss, dy = softmax_xent(y, target)
    backward(dy)
    return loss


def _siamese_step(model: Layer, batch: Batch, rng, margin: float) -> float:
    v1, back1 = model(batch.ids, Context(batch.packing, rng), train=True)
    v2, back2 = model(batch.ids2, Context(batch.packing2, rng), train=True)
    loss, dv1, dv2 = triplet_loss(v1, v2, margin, reduction="sum")   # J = sum_i, as the seed
    back1(dv1.astype(v1.dtype, copy=False))
    back2(dv2.astype(v2.dtype, copy=False))   # shared weights: both sides add into the same grads
    return loss


# ---------------------------------------------------------------- prediction

def predict_logprobs(model: Layer, ids: np.ndarray, batch_packing) -> np.ndarray:
    """Log-probabilities: (N, K) packed rows for a tagger, (B, K) for a classifier."""
    y, _ = model(ids, Context(batch_packing), train=False)
    return log_softmax(y)


def encode(model: Layer, ids: np.ndarray, packing) -> np.ndarray:
    """Siamese encoder: (B, d) unit vectors, in input order."""
    v, _ = model(ids, Context(packing), train=False)
    return v
