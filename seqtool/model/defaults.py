"""The training options of every task: their defaults, and which models read them.

One table drives ``seqtool train``'s behaviour (stages/train.resolve_options),
its ``--help`` (cli.py renders ``default_text``) and the refusal of an option a
model would not read, so help and behaviour cannot drift apart. Plain data: this
module imports neither numpy nor numba, so ``--help`` stays fast.
"""
TASKS = ("tagger", "classifier", "siamese")

# Word-input options of every task, and the tagger's output/character options. The tagger's defaults
# are the best setting of the CoNLL-2003 dev search (issue 7: CRF + char CNN + shape features). A saved
# config without these keys (a model saved before they existed) reads as off: see reads_chars, find_crf.
WORD_DEFAULTS = dict(embeddings=None, freeze_embeddings=False, vectors_limit=None)
TAGGER_DEFAULTS = dict(crf=True, bio_constraints=True, char=True, char_dim=30, char_filters=50, char_window=3,
                       shape_dim=8)
# Architecture options and their defaults per task (model/tasks.py builds them).
ARCH_DEFAULTS = {
    "tagger": dict(cell="lstm", bidirectional=True, layers=1, embed=100, hidden=128, dropout=0.5,
                   activation="tanh", residual=False, pool="mean", margin=0.25, **WORD_DEFAULTS,
                   **TAGGER_DEFAULTS),
    "classifier": dict(cell="none", bidirectional=False, layers=1, embed=64, hidden=64, dropout=0.3,
                       activation="tanh", residual=False, pool="mean", margin=0.25, **WORD_DEFAULTS),
    "siamese": dict(cell="lstm", bidirectional=True, layers=1, embed=128, hidden=128, dropout=0.4,
                    activation="tanh", residual=False, pool="mean", margin=0.25, **WORD_DEFAULTS),
}
# The training loop's options (model/fit.py).
TRAIN_DEFAULTS = dict(optimizer="adam", lr=2e-3, clip_norm=5.0, clip_value=None, epochs=30, patience=5,
                      batch_size=32, seed=0, max_time=None, word_dropout=0.05, weight_decay=0.0,
                      lr_decay=0.0, hard_negatives=False)
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
# Where a task's best setting with pretrained vectors (--embeddings) differs from its default. CoNLL-2003 dev
# search with GloVe 6B 50d (issue 16): 200 hidden units and 30 epochs give entity F1 94.14, against 93.86 with
# the no-vector defaults (128 units, 20 epochs) and 94.00 with 30 epochs alone; without vectors the defaults
# above stay (91.0).
VECTOR_DEFAULTS = {"tagger": dict(hidden=200, epochs=30)}
OPTION_NAMES = set(TRAIN_DEFAULTS) | set(ARCH_DEFAULTS["tagger"]) | set(VOCAB_DEFAULTS)

# Options that only some tasks' models read; every other option is read by every task.
ONLY_FOR_TASKS = {"margin": ("siamese",), "hard_negatives": ("siamese",), "pool": ("classifier", "siamese"),
                  **{name: ("tagger",) for name in TAGGER_DEFAULTS}}
# Only the task decides: an option of a part that a switch turns off (--hidden with --cell none,
# --char-dim with --no-char) is kept in the config and accepted, so that a sweep can flip the switch
# (pipelines/sentiment.yaml's cell variable) without editing the sizes.


def defaults(task: str, with_vectors: bool = False) -> dict:
    """Every option's default for ``task`` (the config a model gets when nothing is given); ``with_vectors``:
    when it is trained with --embeddings."""
    base = dict(ARCH_DEFAULTS[task], **TRAIN_DEFAULTS, **VOCAB_DEFAULTS, task=task) | TASK_TRAIN_DEFAULTS[task]
    return base | (VECTOR_DEFAULTS.get(task, {}) if with_vectors else {})


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def misapplied(task: str, given) -> tuple[str, str] | None:
    """(option, why) for the first option in ``given`` that ``task``'s model never reads; None: all apply.

    One rule for every option: given for a task that would ignore it, it is refused, never dropped.
    """
    for name in sorted(given):
        if task not in ONLY_FOR_TASKS.get(name, TASKS):
            return name, f"{flag(name)} does not apply to --task {task}: it is for {' and '.join(ONLY_FOR_TASKS[name])}"
    return None


# What an unset (None) option means, where it is not "none".
NONE_MEANS = {"vectors_limit": "all"}


def show_value(value, name: str | None = None) -> str:
    """An option value as --help and seqtool info show it: on/off, none, 0.002."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return NONE_MEANS.get(name, "none")
    return f"{value:g}" if isinstance(value, float) else str(value)


def default_text(name: str) -> str:
    """``name``'s default as --help shows it: ``[0.002]`` when every task reads it alike, else per task
    and only for the tasks that read it: ``[tagger 20, classifier/siamese 30]``, ``[siamese 0.25]``."""
    tasks = ONLY_FOR_TASKS.get(name, TASKS)
    by_value: dict[str, list] = {}
    for task in tasks:
        by_value.setdefault(show_value(defaults(task)[name], name), []).append(task)
    vectors = [f"{t} {show_value(v[name], name)}" for t, v in VECTOR_DEFAULTS.items() if name in v and t in tasks]
    with_vectors = f"(with --embeddings: {', '.join(vectors)}) " if vectors else ""
    if len(by_value) == 1 and tasks == TASKS:
        return f"{with_vectors}[{next(iter(by_value))}]"
    return with_vectors + "[" + ", ".join(f"{'/'.join(ts)} {v}" for v, ts in by_value.items()) + "]"
