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
from contextlib import contextmanager

import numpy as np

from seqtool.model import modelio
from seqtool.errors import DataError, SeqtoolError, UsageError, EXIT_INTERRUPTED
from seqtool.data.dataset import TaskData, collect
from seqtool.model.defaults import OPTION_NAMES, TASKS, defaults, flag, misapplied
from seqtool.model.inference import dev_score
from seqtool.model.fit import Job, TrainingState, fit, restore
from seqtool.data.jsonl import STDIN, open_input, source_name
from seqtool.data.readers import Source
from seqtool.model.embeddings import TrainedRows
from seqtool.model.siamese import training_pairs
from seqtool.stages.base import Report
from seqtool.model.tasks import build_model, check_arch, reads_chars, word_embedding
from seqtool.data.vocab import Counts, Vocab, prepare

VOCAB_OPTIONS = ("min_count", "max_size", "lowercase")   # read when the vocabulary is built here


class Interrupted(SeqtoolError):
    exit_code = EXIT_INTERRUPTED


def check_option_names(options: dict) -> dict:
    """The options given (None = not given), refusing a name that is no training option."""
    unknown = sorted(set(options) - OPTION_NAMES)
    if unknown:
        raise UsageError(f"unknown training option(s): {', '.join(unknown)}")
    return {k: v for k, v in options.items() if v is not None}


def resolve_options(task: str, options: dict) -> dict:
    """Defaults for ``task`` overlaid with the options given (None = not given).

    An option the model of ``task`` never reads (``--margin`` or ``--char-dim`` for a classifier) is
    refused, as every other mistake is: never silently dropped (model/defaults.misapplied).
    """
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    given = check_option_names(options)
    cfg = defaults(task, with_vectors=bool(given.get("embeddings"))) | given
    wrong = misapplied(task, given)
    if wrong:
        raise UsageError(wrong[1])
    check_arch(cfg)
    if cfg["epochs"] < 1 or cfg["batch_size"] < 1:
        raise UsageError("--epochs and --batch-size must be at least 1")
    if cfg["lr"] <= 0:
        raise UsageError("--lr must be positive")
    return cfg


def infer_task(record: dict) -> tuple[str | None, str]:
    """The task a training record is for, and the keys that tell (None: they do not); raw records and
    the output of vocab or pad alike."""
    if "tags" in record or "tag_ids" in record:
        return "tagger", 'it has "tags"'
    if "label" in record or "label_id" in record:
        return "classifier", 'it has a "label"'
    if "is_duplicate" in record and any(k in record for k in ("q1", "q1_tokens", "q1_ids")):
        return "siamese", 'it is a pair with "is_duplicate"'
    return None, f"it has {', '.join(map(repr, record)) or 'no keys'}"


# ---------------------------------------------------------------- reading the data

@contextmanager
def readable_input(train: str):
    """(path, name) of the training input: stdin is copied to a temporary file first, because
    building a vocabulary reads the records twice."""
    if train != STDIN:
        yield train, source_name(train)
        return
    with tempfile.TemporaryDirectory(prefix="seqtool-train-") as tmp:
        path = os.path.join(tmp, "stdin.jsonl")
        with open_input(STDIN) as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst)
        yield path, "<stdin>"


def first_record(path: str, name: str, fmt: str | None, skip_invalid: bool) -> dict:
    src = Source(path, fmt, skip_invalid=skip_invalid)
    src.name = name
    first = next(iter(src), None)
    if first is None:
        raise DataError("no records", name)
    return first[1]


def read_training_data(path: str, name: str, fmt: str | None, vocab_path: str | None, cfg: dict,
                       skip_invalid: bool) -> tuple[TaskData, Vocab, str]:
    """(data, vocab, fingerprint) from a raw file (building the vocabulary unless given) or an id'd stream."""
    fingerprint = modelio.data_fingerprint([path])
    src = Source(path, fmt, skip_invalid=skip_invalid)
    src.name = name
    first = first_record(path, name, fmt, skip_invalid)
    if any(k in first for k in ("ids", "q1_ids")):
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
            vocab = counts.vocab(min_count=cfg["min_count"], max_size=cfg["max_size"], lowercase=cfg["lowercase"])
        records = src.map(vocab.encode)
    data = collect(records, cfg["task"], name, _char_index(vocab, cfg))
    warning = src.reject.warning()
    if warning:
        print(f"seqtool train: {warning}", file=sys.stderr)
    if len(data) == 0:
        raise DataError("no records to train on", name)
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

def run_train(train: str = STDIN, *, output: str, task: str | None = None, dev: str | None = None,
              vocab: str | None = None, format: str | None = None, resume: bool = False,
              threads: int | None = None, skip_invalid: bool = False, progress: bool | None = None,
              **options) -> tuple[dict, Report]:
    """Train a model on ``train`` (scored on ``dev``) and save it at ``output``.

    ``task`` None: inferred from the first record (said on stderr unless progress is False).
    Returns (summary dict for stdout, Report for stderr).
    """
    from seqtool.runtime import configure, library_versions

    configure(threads)
    given = check_option_names(options)
    if vocab is not None and set(given) & set(VOCAB_OPTIONS):
        name = flag(sorted(set(given) & set(VOCAB_OPTIONS))[0])
        raise UsageError(f"{name} builds the vocabulary; with --vocab FILE the file's own settings apply")
    modelio.check_model_path(output)            # before any work: an unwritable output is a usage error
    with readable_input(train) as (path, name):
        if task is None:
            task = _inferred_task(first_record(path, name, format, skip_invalid), name, progress)
        cfg = resolve_options(task, given)
        data, vocabulary, fingerprint = read_training_data(path, name, format, vocab, cfg, skip_invalid)
    pretrained = _read_vectors(cfg, vocabulary, given.get("embed")) if cfg["embeddings"] else None
    train_ids = _flat_ids(data)
    warnings = _batches_from_pad(data, cfg, given)
    pairs = data
    if task == "siamese":
        data = _siamese_rows(data, cfg, name)
    dev_data = read_dev(dev, format, vocabulary, task, cfg) if dev else None
    n_out = _output_size(task, vocabulary)
    model = build_model(cfg, len(vocabulary.words), n_out, cfg["seed"], n_chars=len(vocabulary.chars),
                        tag_names=vocabulary.tags.names if task == "tagger" else None)
    if pretrained is not None:       # on --resume too: the checkpoint holds only the rows training changes
        ids = {"train": train_ids, **({"dev": _flat_ids(dev_data)} if dev_data is not None else {})}
        for line in pretrained.fill(word_embedding(model).params["E"], ids):
            print(f"seqtool train: {line}", file=sys.stderr)
    table = TrainedRows(_table_name(model), word_embedding(model).params["E"], train_ids) \
        if vocabulary.vector_words_added else None
    del pretrained, train_ids
    ckpt_path = modelio.checkpoint_path(output)
    state = _load_resume(ckpt_path, model, cfg, table) if resume else TrainingState.start(model, cfg)
    t0 = time.perf_counter()
    result = _fit_saying_compiles(model, data, cfg, state, progress, ckpt_path,
                                  (lambda m: dev_score(m, dev_data, vocabulary, cfg)) if dev_data is not None else None,
                                  table)
    restore(model, result.best_weights)
    metrics = _metrics(result, time.perf_counter() - t0)
    config = dict(cfg, n_vocab=len(vocabulary.words), n_out=n_out, n_chars=len(vocabulary.chars),
                  data_fingerprint=fingerprint, threads=threads,
                  **{f"{lib}_version": v for lib, v in library_versions().items()})
    if task == "siamese":
        config["threshold"], config["threshold_from"] = _threshold(model, metrics, pairs, vocabulary, cfg, warnings)
    if vocabulary.vector_words_added:
        config["word_table"] = _table_name(model)
    modelio.save_model(output, config, {k: v for k, v in model.named_params().items()}, vocabulary.to_dict(),
                       metrics, vector_words=vocabulary.vector_words())
    shutil.rmtree(ckpt_path, ignore_errors=True)
    summary = {"model": output, "task": task, "epochs": len(result.history), "best_epoch": result.best_epoch,
               "stopped": result.stopped, "dev": metrics["best_dev"], "seconds": metrics["seconds"],
               "train_tokens_per_s": round(float(np.mean([r.tokens_per_s for r in result.history])), 1)
               if result.history else None}
    if task == "siamese":
        summary["threshold"] = config["threshold"]
    return summary, Report(f"model saved to {output} (best epoch {result.best_epoch}, stopped: {result.stopped})",
                           warnings)


def _inferred_task(record: dict, name: str, progress: bool | None) -> str:
    task, why = infer_task(record)
    if task is None:
        raise UsageError(f"cannot tell the task from the first record ({why}): give --task "
                         f"{', '.join(TASKS[:-1])} or {TASKS[-1]}", name)
    if progress is not False:
        print(f"seqtool train: --task {task} (the first record of {name}: {why}; give --task to choose)",
              file=sys.stderr, flush=True)
    return task


def _batches_from_pad(data: TaskData, cfg: dict, given: dict) -> list[str]:
    """Records from ``seqtool pad`` train in pad's batches (data.groups), as the pipe promises; the
    warnings this gives (none, or why a Siamese model makes its own)."""
    if data.groups is None:
        return []
    if "batch_size" in given:
        raise UsageError("--batch-size: the input comes in the batches seqtool pad made, and training takes "
                         "them as they are: set the batch size on pad (or give train the unpadded records)")
    if cfg["task"] == "siamese":
        data.groups = None
        return ["a siamese model makes its own batches (duplicate pairs, no question twice in a batch): "
                f"the batches of seqtool pad are not used; --batch-size {cfg['batch_size']} applies"]
    cfg["batch_size"] = max(len(g) for g in data.groups)
    return []


def _fit_saying_compiles(model, data, cfg, state, progress, ckpt_path, dev, table: TrainedRows | None):
    """fit(), saying on stderr when numba compiles kernels (a first run: its cache was empty), with the
    compile time left out of the tokens/s figures; Ctrl-C keeps a checkpoint."""
    from seqtool.runtime import watching_compiles

    def say():
        if progress is not False:
            print("seqtool train: compiling kernels (first run only, ~30 s)", file=sys.stderr, flush=True)

    with watching_compiles(say) as watch:
        reporter = _Progress(progress, cfg["epochs"], watch)
        job = Job(cfg["task"], model, data, cfg, progress=reporter, dev=dev, clock=watch.clock,
                  after_epoch=lambda st: modelio.save_checkpoint(ckpt_path, _checkpoint(st, model, table)))
        try:
            result = fit(job, state)
        except KeyboardInterrupt:
            # Keep the work done: the weights as they are now, counted as the last finished
            # epoch (a resumed run repeats the interrupted one). The model at --output is untouched.
            reporter.close()
            modelio.save_checkpoint(ckpt_path, _checkpoint(state, model, table))
            raise Interrupted(f"interrupted after {state.epoch} epochs; checkpoint saved to {ckpt_path}: "
                              f"continue with --resume") from None
        reporter.close()
    return result


def _threshold(model, metrics: dict, pairs: TaskData, vocabulary: Vocab, cfg: dict, warnings: list):
    """A Siamese model's tau and where it was chosen: on dev, or (no --dev) on the training pairs, with
    a warning, so that dedupe and is_duplicate work rather than fail later."""
    tau = metrics["best_dev"].get("threshold")
    if tau is not None:
        return tau, "dev"
    _, scores = dev_score(model, pairs, vocabulary, cfg)
    warnings.append(f"no --dev: the threshold tau {scores['threshold']:.4f} was chosen on the training pairs "
                    f"(accuracy {scores['accuracy']:.4f} there, optimistic); give --dev FILE for a fair one")
    return scores["threshold"], "training pairs"


def _siamese_rows(data: TaskData, cfg: dict, train: str) -> TaskData:
    """The rows a Siamese model trains on (model/siamese.training_pairs), once there are duplicates."""
    n_dup = int(np.sum(data.labels == 1))
    if n_dup < 2:
        raise DataError(f"a siamese model needs duplicate pairs (is_duplicate 1) to train on; found {n_dup}", train)
    return training_pairs(data, hard_negatives=cfg["hard_negatives"])


def _metrics(result, seconds: float) -> dict:
    """metrics.json: the best epoch and its dev metrics, why training stopped, and every epoch's record."""
    best = result.history[result.best_epoch - 1].dev if 1 <= result.best_epoch <= len(result.history) else {}
    return {"best_epoch": result.best_epoch, "best_dev": best, "stopped": result.stopped,
            "seconds": round(seconds, 2), "history": [vars(r) for r in result.history]}


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

def _checkpoint(state: TrainingState, model, table: TrainedRows | None) -> dict:
    if table is None:
        return state.to_checkpoint(model)
    return dict(state.to_checkpoint(model, {table.name: table.rows}), table_start=table.start)


def _load_resume(path: str, model, cfg: dict, table: TrainedRows | None) -> TrainingState:
    if not os.path.isdir(path):
        raise UsageError(f"--resume: no checkpoint at {path} (it is written after every epoch)")
    saved = modelio.load_checkpoint(path)
    if table is not None and saved.get("table_start", table.start) != table.start:
        raise UsageError(f"--resume: the word table does not start as in the run of the checkpoint at {path}: "
                         f"give the same --embeddings file and --vectors-limit")
    try:
        return TrainingState.from_checkpoint(saved, model, cfg)
    except (KeyError, ValueError, IndexError) as e:
        raise UsageError(f"--resume: the checkpoint at {path} does not fit these options ({e}): give the "
                         f"options it was trained with") from None


# ---------------------------------------------------------------- progress on stderr

class _Progress:
    """A tqdm bar per epoch (stderr) and one line per finished epoch; silent when disabled."""

    def __init__(self, enabled: bool | None, epochs: int, compiles=None):
        self.enabled, self.epochs, self.bar = enabled, epochs, None
        self.compiles, self.compiled_before = compiles, 0.0     # a CompileWatch: seconds spent compiling

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
              + self._compiled() + (f"; dev {dev}" if dev else ""), file=sys.stderr, flush=True)

    def _compiled(self) -> str:
        """`` (+12.3s compiling kernels)``: numba's time since the last line (not in tokens/s)."""
        if self.compiles is None or self.compiles.seconds - self.compiled_before < 0.05:
            return ""
        spent, self.compiled_before = self.compiles.seconds - self.compiled_before, self.compiles.seconds
        return f" (+{spent:.1f}s {'compiling' if self.compiles.compiled else 'loading compiled'} kernels)"

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
