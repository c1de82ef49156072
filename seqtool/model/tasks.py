"""The three jobs as models: build one from a config, train it a step, predict with it.

    tagger      Embedding > Dropout > (bi)RNN stack > Dropout > Dense  -> per-token log-softmax
                (char: WordFeatures = [Embedding | CharCNN | shape] in place of the Embedding;
                crf: a CRF after the Dense -> Viterbi paths, marginals, the CRF's NLL in training)
    classifier  Embedding > Dropout > [RNN stack] > Pool > Dropout > Dense -> softmax per sequence
                (cell "none": Embedding > Mean > Dense)
    siamese     Embedding > Dropout > RNN stack > Pool(mean) > L2Normalize, one encoder for both sides

A model's architecture is fully described by its config dict (saved as
config.json), so loading rebuilds it and fills in the weights by name.
"""
import numpy as np

from seqtool.model.charfeatures import WordFeatures
from seqtool.model.crf import CRF, bio_allowed, find_crf
from seqtool.model.defaults import ARCH_DEFAULTS, TAGGER_DEFAULTS, TASKS, WORD_DEFAULTS  # noqa: F401 (re-exported)
from seqtool.data.dataset import Batch
from seqtool.errors import UsageError
from seqtool.kernels import CELL_GATES, lazy
from seqtool.kernels import numpy_path as ref
from seqtool.model.layers import (
    Context,
    Dense,
    Dropout,
    Embedding,
    L2Normalize,
    Layer,
    Pool,
    Serial,
)
from seqtool.model.recurrent import Stack

kl = lazy("seqtool.kernels.loss")

CELLS = (*CELL_GATES, "none")          # "none": no recurrent layer (a mean of word vectors)
# The options and their defaults per task live in defaults.py (plain data, shared with --help).


def reads_chars(cfg: dict) -> bool:
    """Whether the model built from ``cfg`` reads the per-token character column (Batch.chars)."""
    return bool(cfg.get("char")) or int(cfg.get("shape_dim") or 0) > 0


def check_arch(cfg: dict) -> None:
    """Refuse combinations that cannot be built, with the option's name."""
    if cfg["task"] not in TASKS:
        raise UsageError(f"unknown task {cfg['task']!r}; expected one of {', '.join(TASKS)}")
    if cfg["cell"] not in CELLS:
        raise UsageError(f"unknown cell {cfg['cell']!r}; expected one of {', '.join(CELLS)}")
    if cfg["cell"] == "none" and cfg["task"] == "tagger":
        raise UsageError("--cell none (no recurrent layer) is for --task classifier and siamese")
    for key in ("layers", "embed", "hidden"):
        if int(cfg[key]) < 1:
            raise UsageError(f"--{key} must be at least 1")
    if not 0.0 <= float(cfg["dropout"]) < 1.0:
        raise UsageError("--dropout must be in [0, 1)")
    if cfg["task"] != "tagger" and (cfg.get("crf") or reads_chars(cfg)):
        raise UsageError("--crf, --char and --shape-dim are for --task tagger")
    if reads_chars(cfg) and int(cfg.get("char_window", 3)) % 2 != 1:
        raise UsageError("--char-window must be odd")


def build_model(cfg: dict, n_vocab: int, n_out: int, seed: int, n_chars: int = 2,
                tag_names: list | None = None) -> Layer:
    """A freshly initialised model for ``cfg`` (task + architecture options).

    n_chars: size of the character table (Vocab.chars) for --char; tag_names:
    the tagger's tags, for the CRF's BIO constraints at decode time.
    """
    check_arch(cfg)
    rng = np.random.default_rng(seed)
    E, H, p = int(cfg["embed"]), int(cfg["hidden"]), float(cfg["dropout"])
    width = H * (2 if cfg["bidirectional"] else 1)
    words = _word_embedding(cfg, n_vocab, E, rng)
    if reads_chars(cfg):
        words = WordFeatures(n_vocab, E, n_chars, int(cfg["char_dim"]), int(cfg["char_filters"]) if cfg["char"]
                             else 0, int(cfg["char_window"]), int(cfg["shape_dim"]), rng=rng, word_layer=words)
        E = words.width
    layers: list[Layer] = [words]
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
        if cfg.get("crf"):
            crf = CRF(n_out)
            if cfg.get("bio_constraints", True) and tag_names is not None:
                crf.allowed = bio_allowed(list(tag_names))
            layers.append(crf)
    elif task == "classifier":
        layers.append(Pool(cfg["pool"], bidirectional=bool(cfg["bidirectional"]) and cfg["cell"] != "none"))
        layers += ([Dropout(p)] if p > 0 else []) + [Dense(width, n_out, rng=rng)]
    else:
        layers += [Pool(cfg.get("pool", "mean"), bidirectional=bool(cfg["bidirectional"]) and cfg["cell"] != "none"),
                   L2Normalize()]
    return Serial(*layers)


def _word_embedding(cfg: dict, n_vocab: int, dim: int, rng) -> Layer:
    if cfg.get("freeze_embeddings"):
        from seqtool.model.embeddings import FrozenEmbedding

        return FrozenEmbedding(n_vocab, dim, pad_id=0, rng=rng)
    return Embedding(n_vocab, dim, pad_id=0, rng=rng)


def word_embedding(model: Layer) -> Embedding:
    """The word Embedding of a model built by build_model (the one --embeddings fills)."""
    first = model.layers[0]
    return first.layers[0] if isinstance(first, WordFeatures) else first


def model_input(model: Layer, batch: Batch):
    """What the model reads from a batch: the word ids, or (ids, chars) when it has character features."""
    if getattr(model.layers[0], "reads_chars", False):   # WordFeatures
        if batch.chars is None:
            raise UsageError("this model reads characters, but the batch has no character column")
        return batch.ids, batch.chars
    return batch.ids


def load_network(cfg: dict, weights: dict, n_chars: int, tag_names: list | None) -> Layer:
    """A saved model's network. A word table kept apart (cfg["word_table"]: a memory-mapped 400k-word one)
    is taken as it is: neither initialised at random first nor copied."""
    table = cfg.get("word_table")
    model = build_model(cfg, 2 if table else cfg["n_vocab"], cfg["n_out"], seed=0, n_chars=n_chars,
                        tag_names=tag_names)
    if table:
        if weights[table].shape != (cfg["n_vocab"], int(cfg["embed"])):
            raise UsageError(f"word table {table} has shape {weights[table].shape}, the model needs "
                             f"{(cfg['n_vocab'], int(cfg['embed']))}")
        word_embedding(model).params["E"] = weights[table]
    set_weights(model, weights, shared=(table,) if table else ())
    return model


def set_weights(model: Layer, weights: dict, shared: tuple = ()) -> None:
    """Fill a freshly built model's parameters from a saved name -> array dict (the ``shared`` ones are
    already the saved arrays themselves)."""
    have = model.named_params()
    missing = sorted(set(have) - set(weights))
    extra = sorted(set(weights) - set(have))
    if missing or extra:
        raise UsageError(f"weights do not match the model's architecture (missing {missing[:3]}, "
                         f"unexpected {extra[:3]})")
    for name, layer, local in model.walk():
        if name in shared:
            continue
        src = weights[name]
        if src.shape != layer.params[local].shape:
            raise UsageError(f"weight {name} has shape {src.shape}, the model needs {layer.params[local].shape}")
        layer.params[local][...] = src


# ---------------------------------------------------------------- one training step per task

def train_step(task: str, model: Layer, batch: Batch, rng: np.random.Generator, margin: float = 0.25) -> float:
    """Forward, loss and backward for one batch; gradients accumulate in the model. Returns the loss."""
    if task == "siamese":
        return _siamese_step(model, batch, rng, margin)
    y, backward = model(model_input(model, batch), Context(batch.packing, rng), train=True)
    crf = find_crf(model) if task == "tagger" else None
    if crf is not None:
        loss, dy = crf.loss(y, batch.tag_ids, batch.packing)   # mean NLL per token; adds the CRF's grads
    else:
        loss, dy = kl.softmax_xent(y, batch.tag_ids if task == "tagger" else batch.labels)
    backward(dy)
    return loss


def _siamese_step(model: Layer, batch: Batch, rng, margin: float) -> float:
    v1, back1 = model(batch.ids, Context(batch.packing, rng), train=True)
    v2, back2 = model(batch.ids2, Context(batch.packing2, rng), train=True)
    loss, dv1, dv2 = kl.triplet_loss(v1, v2, margin, reduction="sum")   # J = sum_i, as the seed
    back1(dv1.astype(v1.dtype, copy=False))
    back2(dv2.astype(v2.dtype, copy=False))   # shared weights: both sides add into the same grads
    return loss


# ---------------------------------------------------------------- prediction

def predict_logprobs(model: Layer, ids, batch_packing) -> np.ndarray:
    """Log-probabilities: (N, K) packed rows for a tagger, (B, K) for a classifier (ids: model_input)."""
    y, _ = model(ids, Context(batch_packing), train=False)
    return (ref if ref.enabled() else kl).log_softmax(y)


def predict_tag_ids(model: Layer, x, packing) -> tuple[np.ndarray, np.ndarray]:
    """A tagger's (best tag (N,), its probability (N,)) per packed row (x: model_input).

    Without a CRF: the per-token argmax and its softmax probability. With one:
    the Viterbi path (BIO-constrained when the model was built so) and each
    chosen tag's marginal probability from forward-backward.
    """
    y, _ = model(x, Context(packing), train=False)
    crf = find_crf(model)
    if crf is None:
        logp = (ref if ref.enabled() else kl).log_softmax(y)
        best = logp.argmax(axis=1)
        return best, np.exp(logp[np.arange(len(best)), best])
    best = crf.viterbi(y, packing)
    return best, crf.marginals(y, packing)[np.arange(len(best)), best]


def encode(model: Layer, ids: np.ndarray, packing) -> np.ndarray:
    """Siamese encoder: (B, d) unit vectors, in input order."""
    v, _ = model(ids, Context(packing), train=False)
    return v
