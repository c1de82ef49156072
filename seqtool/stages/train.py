"""The ``train`` stage: records in, a model directory out.

Input is either raw records (any supported format: the vocabulary is built
here, with the same functions as ``seqtool vocab``) or the id'd stream of
``seqtool vocab | seqtool pad`` together with the ``--vocab`` it was made
with. Everything is held as compact arrays (dataset.py), trained by fit.py,
and saved atomically by modelio.py; a checkpoint beside the model after
every epoch makes ``--resume`` and Ctrl-C safe.
"""
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from seqtool.model import modelio
from seqtool.errors import DataError, SeqtoolError, UsageError, EXIT_INTERRUPTED
from seqtool.data.dataset import TaskData, collect
from seqtool.model.inference import dev_score
from seqtool.model.fit import TRAIN_DEFAULTS, fit, make_optimizer, restore, word_dropout
from seqtool.data.jsonl import STDIN, open_input
from seqtool.data.readers import Source
from seqtool.model.siamese import training_pairs
from seqtool.stages.base import Report
from seqtool.model.tasks import ARCH_DEFAULTS, TASKS, build_model, check_arch, reads_chars, word_embedding
from seqtool.data.vocab import Counts, Vocab, prepare

VOCAB_DEFAULTS = dict(min_count=1, max_size=None, lowercase=False)
# Where a task's best setting differs from the shared training/vocabulary defaults. The tagger's come
# from the CoNLL-2003 dev search of issue 7: lower-cased word lookup (the char CNN and the shape
# embedding keep the case), more word dropout, a decaying learning rate, converged by ~15 epochs.
TASK_TRAIN_DEFAULTS = {
    "tagger": dict(lowercase=True, word_dropout=0.1, lr_decay=0.05, epochs=20),
    "classifier": {},
    # Quora dev search (issue 5): lower case, the labelled non-duplicates as hard negatives, and
    # (with the bidirectional encoder and dropout 0.4 of ARCH_DEFAULTS) word dropout 0.1: 0.7505
    # accuracy, AUC 0.800, against 0.726 / 0.760 for the first defaults (max pooling, a wider
    # margin, a larger batch, 300 units or word averaging instead of the LSTM: 0.727-0.742).
    "siamese": dict(lowercase=True, hard_negatives=True, word_dropout=0.1),
}
OPTION_NAMES = set(TRAIN_DEFAULTS) | set(ARCH_DEFAULTS["tagger"]) | set(VOCAB_DEFAULTS)


class Interrupted(SeqtoolError):
    exit_code = EXIT_INTERRUPTED


def resolve_options(task: str, options: dict) -> dict:
    """Defaults for ``task`` overlaid with the options given (None = not given)."""
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    unknown = sorted(set(options) - OPTION_NAMES)
    if unknown:
        raise UsageError(f"unknown training option(s): {', '.join(unknown)}")
    cfg = dict(ARCH_DEFAULTS[task], **TRAIN_DEFAULTS, **VOCAB_DEFAULTS, task=task)
    cfg.update(TASK_TRAIN_DEFAULTS[task])
    cfg.update({k: v for k, v in options.items() if v is not None})
    check_arch(cfg)
    if cfg["epochs"] < 1 or cfg["batch_size"] < 1:
        raise UsageError("--epochs and --batch-size must be at least 1")
    if cfg["lr"] <= 0:
        raise UsageError("--lr must be positive")
    if cfg["hard_negatives"] and task != "siamese":
        raise UsageError("--hard-negatives is for --task siamese")
    return cfg


# ---------------------------------------------------------------- reading the data

def read_training_data(train: str, fmt: str | None, vocab_path: str | None, cfg: dict,
                       skip_invalid: bool) -> tuple[TaskData, Vocab, str]:
    """(data, vocab, fingerprint) from a raw file (building the vocabulary unless given) or an id'd stream."""
    with tempfile.TemporaryDirectory(prefix="seqtool-train-") as tmp:
        path = train
        if train == STDIN:       # read stdin once into a file: building a vocabulary needs two passes
            path = os.path.join(tmp, "stdin.jsonl")
            with open_input(STDIN) as src, open(path, "wb") as dst:
                shutil.copyfileobj(src, dst)
        fingerprint = modelio.data_fingerprint([path])
        src = Source(path, fmt, skip_invalid=skip_invalid)
        src.name = "<stdin>" if train == STDIN else train
        first = next(iter(src), None)
        if first is None:
            raise DataError("no records", src.name)
        already_ids = any(k in first[1] for k in ("ids", "q1_ids"))
        if already_ids:
            if vocab_path is None:
                raise UsageError("the input already has ids (vocab/pad output): give the --vocab it was made with")
            vocab = Vocab.from_json(vocab_path)
            records = (r for _, r in src)
        else:
            if vocab_path is not None:
                vocab = Vocab.from_json(vocab_path)
            else:
                counts = Counts()
                for record in src.map(prepare):
                    counts.add(record)
                vocab = counts.vocab(min_count=cfg["min_count"], max_size=cfg["max_size"],
                                     lowercase=cfg["lowercase"])
            records = src.map(vocab.encode)
        data = collect(records, cfg["task"], src.name, _char_index(vocab, cfg))
        warning = src.reject.warning()
    if warning:
        print(f"seqtool train: {warning}", file=sys.stderr)
    if len(data) == 0:
        raise DataError("no records to train on", train if train != STDIN else "<stdin>")
    return data, vocab, fingerprint


def read_dev(dev: str, fmt: str | None, vocab: Vocab, task: str, cfg: dict | None = None) -> TaskData:
    src = Source(dev, fmt)
    return collect(src.map(vocab.encode), task, src.name, _char_index(vocab, cfg or {}))


def _char_index(vocab: Vocab, cfg: dict) -> dict | None:
    return vocab.chars.index if reads_chars(cfg) else None


def _read_vectors(cfg: dict, vocab: Vocab, given_embed: int | None):
    """The vectors file of --embeddings, its words added to ``vocab``; --embed set to its dimension."""
    from seqtool.model.embeddings import Pretrained

    _embed_size(cfg, given_embed)
    return Pretrained(cfg["embeddings"], cfg["vectors_limit"], vocab)


def _flat_ids(data: TaskData) -> np.ndarray:
    return np.concatenate([r.flat for r in (data.tokens, data.tokens2) if r is not None])


def _table_name(model) -> str:
    """The name under which the word table is saved (config["word_table"]: apart, memory-mapped)."""
    table = word_embedding(model).params["E"]
    return next(name for name, arr in model.named_params().items() if arr is table)


def _embed_size(cfg: dict, given: int | None) -> None:
    """--embeddings sets --embed to the file's dimension; a different --embed is an error."""
    from seqtool.model.embeddings import vector_dim

    dim = vector_dim(cfg["embeddings"])
    if given is not None and int(given) != dim:
        raise UsageError(f"--embed {given} does not match the {dim}-dimensional vectors of {cfg['embeddings']}")
    cfg["embed"] = dim


# ---------------------------------------------------------------- the stage

def run_train(train: str = STDIN, *, output: str, task: str = "tagger", dev: str | None = None,
              vocab: str | None = None, format: str | None = None, resume: bool = False,
              threads: int | None = None, skip_invalid: bool = False, progress: bool | None = None,
              **options) -> tuple[dict, Report]:
    """Train a model on ``train`` (scored on ``dev``) and save it at ``output``.

    Returns (summary dict for stdout, Report for stderr).
    """
    from seqtool.runtime import configure

    configure(threads)
    cfg = resolve_options(task, options)
    data, vocabulary, fingerprint = read_training_data(train, format, vocab, cfg, skip_invalid)
    pretrained = _read_vectors(cfg, vocabulary, options.get("embed")) if cfg["embeddings"] else None
    train_ids = _flat_ids(data)
    if task == "siamese":
        n_dup = int(np.sum(data.labels == 1))
        if n_dup < 2:
            raise DataError(f"a siamese model needs duplicate pairs (is_duplicate 1) to train on; found {n_dup}",
                            train)
        data = training_pairs(data, hard_negatives=cfg["hard_negatives"])
    dev_data = read_dev(dev, format, vocabulary, task, cfg) if dev else None
    n_out = _output_size(task, vocabulary)
    model = build_model(cfg, len(vocabulary.words), n_out, cfg["seed"], n_chars=len(vocabulary.chars),
                        tag_names=vocabulary.tags.names if task == "tagger" else None)
    if pretrained is not None and not resume:
        ids = {"train": train_ids, **({"dev": _flat_ids(dev_data)} if dev_data is not None else {})}
        for line in pretrained.fill(word_embedding(model).params["E"], ids):
            print(f"seqtool train: {line}", file=sys.stderr)
    del pretrained, train_ids
    ckpt_path = output.rstrip("/") + ".ckpt"
    state = _load_resume(ckpt_path, model) if resume else None
    opt = make_optimizer(model, cfg)
    rng = np.random.default_rng(cfg["seed"])
    start_epoch, best = 0, None
    if state is not None:
        start_epoch, best = _apply_resume(state, opt, rng)

    def batches_for_epoch(epoch, rng):
        return data.batch_order(cfg["batch_size"], rng)

    def make(idx, rng):
        batch = data.batch(idx)
        if cfg["word_dropout"] > 0:
            batch.ids = word_dropout(batch.ids, cfg["word_dropout"], rng)
            if batch.ids2 is not None:
                batch.ids2 = word_dropout(batch.ids2, cfg["word_dropout"], rng)
        return batch

    evaluate_dev = (lambda m: dev_score(m, dev_data, vocabulary, cfg)) if dev_data is not None else None
    reporter = _Progress(progress, cfg["epochs"])

    last = {"epoch": start_epoch, "best": best, "history": []}

    def checkpoint(epoch, model, opt, rng, best, history):
        last.update(epoch=epoch, best=best, history=history)
        modelio.save_checkpoint(ckpt_path, _resume_state(epoch, model, opt, rng, best, history))

    t0 = time.perf_counter()
    try:
        result = fit(task, model, batches_for_epoch, make, evaluate_dev, cfg, reporter, checkpoint,
                     start_epoch, opt, rng, best)
    except KeyboardInterrupt:
        # Keep the work done: the weights as they are now, counted as the last finished
        # epoch (a resumed run repeats the interrupted one). The model at --output is untouched.
        reporter.close()
        best_now = last["best"] or (-1, float("-inf"), model.named_params())
        modelio.save_checkpoint(ckpt_path, _resume_state(last["epoch"], model, opt, rng, best_now,
                                                         last["history"]))
        raise Interrupted(f"interrupted after {last['epoch']} epochs; checkpoint saved to {ckpt_path}: "
                          f"continue with --resume") from None
    reporter.close()
    restore(model, result.best_weights)
    metrics = {"best_epoch": result.best_epoch, "best_dev": result.history[result.best_epoch - 1].dev
               if result.best_epoch >= 1 and result.best_epoch - 1 < len(result.history) else {},
               "stopped": result.stopped, "seconds": round(time.perf_counter() - t0, 2),
               "history": [vars(r) for r in result.history]}
    config = dict(cfg, n_vocab=len(vocabulary.words), n_out=n_out, n_chars=len(vocabulary.chars),
                  data_fingerprint=fingerprint, threads=threads)
    if task == "siamese":
        config["threshold"] = metrics["best_dev"].get("threshold")
    if vocabulary.vector_words_added:
        config["word_table"] = _table_name(model)
    modelio.save_model(output, config, {k: v for k, v in model.named_params().items()}, vocabulary.to_dict(),
                       metrics, vector_words=vocabulary.vector_words())
    shutil.rmtree(ckpt_path, ignore_errors=True)
    summary = {"model": output, "task": task, "epochs": len(result.history), "best_epoch": result.best_epoch,
               "stopped": result.stopped, "dev": metrics["best_dev"], "seconds": metrics["seconds"],
               "train_tokens_per_s": round(float(np.mean([r.tokens_per_s for r in result.history])), 1)
               if result.history else None}
    return summary, Report(f"model saved to {output} (best epoch {result.best_epoch}, stopped: {result.stopped})")


def _output_size(task: str, vocab: Vocab) -> int:
    if task == "tagger":
        if len(vocab.tags) == 0:
            raise DataError("the training records have no \"tags\": a tagger needs them")
        return len(vocab.tags)
    if task == "classifier":
        if len(vocab.labels) < 2:
            raise DataError(f"a classifier needs at least 2 labels in the training data, found {len(vocab.labels)}")
        return len(vocab.labels)
    return 1


# ---------------------------------------------------------------- checkpoints

def _resume_state(epoch, model, opt, rng, best, history) -> dict:
    best_epoch, best_score, best_weights = best
    return {"epoch": epoch, "weights": model.named_params(), "best_epoch": best_epoch,
            "best_score": float(best_score) if np.isfinite(best_score) else None,   # strict JSON: no -Infinity
            "best_weights": best_weights,
            "opt": {"kind": type(opt).__name__, **_opt_state(opt)},
            "rng": rng.bit_generator.state, "history": [vars(r) for r in history]}


def _opt_state(opt) -> dict:
    if hasattr(opt, "m"):
        return {"m": list(opt.m), "v": list(opt.v), "t": list(opt.t)}
    return {"buf": list(opt.buf) if opt.buf is not opt.params else []}


def _load_resume(path: str, model):
    if not os.path.isdir(path):
        raise UsageError(f"--resume: no checkpoint at {path} (it is written after every epoch)")
    state = modelio.load_checkpoint(path)
    restore(model, state["weights"])
    return state


def _apply_resume(state, opt, rng):
    if "m" in state["opt"]:
        for dst, src in zip(opt.m, state["opt"]["m"]):
            dst[...] = src
        for dst, src in zip(opt.v, state["opt"]["v"]):
            dst[...] = src
        opt.t = list(state["opt"]["t"])
    elif state["opt"].get("buf"):
        for dst, src in zip(opt.buf, state["opt"]["buf"]):
            dst[...] = src
    rng.bit_generator.state = state["rng"]
    score = state["best_score"]
    best = (state["best_epoch"], float("-inf") if score is None else score, state["best_weights"])
    return int(state["epoch"]), best


# ---------------------------------------------------------------- progress on stderr

class _Progress:
    """A tqdm bar per epoch (stderr) and one line per finished epoch; silent when disabled."""

    def __init__(self, enabled: bool | None, epochs: int):
        self.enabled, self.epochs, self.bar = enabled, epochs, None

    def __call__(self, record, step):
        if self.enabled is False:
            return
        if step is not None:
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=step["steps"], desc=f"epoch {step['epoch'] + 1}/{self.epochs}",
                                file=sys.stderr, leave=False, disable=None if self.enabled is None else False)
            self.bar.update(1)
            if step["step"] % 20 == 0:
                self.bar.set_postfix(loss=f"{step['loss']:.4f}", gnorm=f"{step['grad_norm']:.2f}")
            return
        self.close()
        dev = " ".join(f"{k}={v:.4f}" for k, v in record.dev.items() if isinstance(v, float))
        print(f"epoch {record.epoch}/{self.epochs}: loss {record.loss:.4f}, {record.tokens_per_s:,.0f} tokens/s, "
              f"grad norm {record.grad_norm:.2f} (max {record.max_grad_norm:.2f}), {record.seconds:.1f}s"
              + (f"; dev {dev}" if dev else ""), file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
