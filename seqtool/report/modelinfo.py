"""The model section: what the model directory says about itself.

Task and architecture, sizes (parameters, vocabulary, characters), the tag or
label set with its training counts, the training options, the data fingerprint
and the versions that wrote it (config.json, vocab.json, weights.npz).
"""
from seqtool import __version__
from seqtool.report import html

TRAINING_KEYS = ("optimizer", "lr", "lr_decay", "weight_decay", "clip_norm", "clip_value", "dropout",
                 "word_dropout", "batch_size", "epochs", "patience", "max_time", "seed", "margin",
                 "hard_negatives", "threads")


def architecture(config: dict) -> str:
    """One line: the layers from input to output, as train builds them (model/tasks.py)."""
    task, cell = config.get("task"), config.get("cell", "none")
    inputs = [f"word embedding {config.get('embed')}" + (" (pre-trained)" if config.get("embeddings") else "")]
    if task == "tagger" and config.get("char"):
        inputs.append(f"character CNN ({config.get('char_filters')} filters, window {config.get('char_window')})")
    if task == "tagger" and config.get("shape_dim"):
        inputs.append(f"word shape {config.get('shape_dim')}")
    parts = [" + ".join(inputs)]
    if cell and cell != "none":
        direction = "bidirectional " if config.get("bidirectional") else ""
        layers = config.get("layers", 1)
        parts.append(f"{direction}{cell.upper()} {config.get('hidden')} units x {layers} layer"
                     + ("s" if layers != 1 else "") + (" (residual)" if config.get("residual") else ""))
    if task == "tagger":
        parts.append("Dense")
        if config.get("crf"):
            parts.append("CRF" + (" (BIO constraints)" if config.get("bio_constraints") else ""))
    elif task == "classifier":
        parts += ([f"{config.get('pool', 'mean')} pooling"] if cell != "none" else ["mean"]) + ["Dense", "softmax"]
    else:
        parts += [f"{config.get('pool', 'mean')} pooling", "L2 normalise (one encoder for both questions)"]
    return " > ".join(parts)


def model_section(path: str, config: dict, vocab: dict, weights: dict, matplotlib_version: str) -> str:
    n_params = sum(int(w.size) for w in weights.values())
    task = config.get("task")
    names = vocab.get("tags" if task == "tagger" else "labels") or []
    label_set = '<div class="tags">' + "".join(
        f"<code>{html.esc(name)}</code> <span class=\"muted\">{html.num(count)}</span>" for name, count in names) + "</div>"
    training = ", ".join(f"{k} {html.esc(config[k])}" for k in TRAINING_KEYS if config.get(k) is not None)
    rows = [
        ("directory", f"<code>{html.esc(path)}</code>"),
        ("task", html.esc(task)),
        ("architecture", html.esc(architecture(config))),
        ("parameters", f"{n_params:,} in {len(weights)} arrays"),
        ("vocabulary", f"{html.num(config.get('n_vocab'))} words (min count {html.esc(vocab.get('min_count'))}"
                       f"{', lower-cased lookup' if vocab.get('lowercase') else ''}), "
                       f"{html.num(config.get('n_chars'))} characters; trained on {html.num(vocab.get('records'))} records"),
    ]
    if task in ("tagger", "classifier"):
        rows.append(("tag set" if task == "tagger" else "label set", label_set))
    if task == "siamese" and config.get("threshold") is not None:
        rows.append(("threshold τ", html.num(float(config["threshold"]))))
    rows += [
        ("training options", html.esc(training)),
        ("data fingerprint", f"<code>{html.esc(config.get('data_fingerprint', 'not recorded'))}</code>"),
        ("versions", f"trained by seqtool {html.esc(config.get('seqtool_version', '?'))} (model format "
                     f"{html.esc(config.get('format_version', '?'))}); this report by seqtool {html.esc(__version__)} "
                     f"with matplotlib {html.esc(matplotlib_version)}"),
    ]
    return html.facts(rows)
