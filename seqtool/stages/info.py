"""The ``info`` stage: what a model directory holds, for people (``info_lines``) and scripts (``model_info``).

Everything comes from the four files ``seqtool train`` wrote (modelio.py): the
task and options (config.json), the layers and their parameter counts (the
weights, laid out by the architecture the config rebuilds), the vocabulary and
tag/label sets (vocab.json), the best dev score and epoch (metrics.json), the
fingerprint of the training data and the versions it was trained with.
"""
from seqtool.model import modelio
import textwrap

from seqtool.model.defaults import ONLY_FOR_TASKS, OPTION_NAMES, TASKS, show_value

VERSIONS = ("seqtool", "numpy", "numba", "python")
SHOWN_NAMES = 20          # tags and labels listed by name up to this many (--json lists them all)


def model_info(path: str) -> dict:
    """A JSON-able description of the model at ``path``."""
    config, weights, vocab, metrics = modelio.load_model(path)
    layers = _layers(config, weights)
    info = {
        "model": path,
        "task": config.get("task"),
        "architecture": " > ".join(name for name, _ in layers),
        "parameters": {"total": sum(n for _, n in layers), "by_layer": [[name, n] for name, n in layers]},
        "options": {k: config[k] for k in sorted(OPTION_NAMES)
                    if k in config and config.get("task") in ONLY_FOR_TASKS.get(k, TASKS)},
        "vocabulary": {"words": len(vocab.get("words", [])), "characters": len(vocab.get("chars", [])),
                       "lowercase": vocab.get("lowercase"), "min_count": vocab.get("min_count"),
                       "max_size": vocab.get("max_size"), "records": vocab.get("records")},
        "tags": [name for name, _ in vocab.get("tags", [])],
        "labels": [name for name, _ in vocab.get("labels", [])],
        "training_data": config.get("data_fingerprint"),
        "best_epoch": metrics.get("best_epoch"),
        "epochs_run": len(metrics.get("history", [])),
        "stopped": metrics.get("stopped"),
        "best_dev": metrics.get("best_dev") or {},
        "trained_with": {name: config.get(f"{name}_version") for name in VERSIONS},
    }
    if config.get("task") == "siamese":
        info["threshold"] = config.get("threshold")
        info["threshold_from"] = config.get("threshold_from", "dev" if config.get("threshold") is not None else None)
    return info


def _layers(config: dict, weights: dict) -> list[tuple[str, int]]:
    """(name, parameter count) of each top-level layer, as the config rebuilds the model."""
    from seqtool.model.tasks import build_model

    model = build_model(config, int(config["n_vocab"]), int(config["n_out"]), 0, n_chars=int(config.get("n_chars", 2)))
    out = []
    for i, layer in enumerate(model.layers):
        out.append((repr(layer), sum(int(w.size) for name, w in weights.items() if name.split(".")[0] == str(i))))
    return out


def info_lines(info: dict) -> list[str]:
    """The description as lines for a terminal."""
    params = info["parameters"]
    lines = [f"model         {info['model']}",
             f"task          {info['task']}",
             f"architecture  {info['architecture']}",
             f"parameters    {params['total']:,} ("
             + ", ".join(f"{name} {n:,}" for name, n in params["by_layer"] if n) + ")"]
    voc = info["vocabulary"]
    lines.append(f"vocabulary    {voc['words']:,} words, {voc['characters']:,} characters "
                 f"(lowercase: {_yes(voc['lowercase'])}, min count {voc['min_count']}, from {voc['records']} records)")
    for key in ("tags", "labels"):
        names = info[key]
        if names:
            shown = ", ".join(map(str, names[:SHOWN_NAMES])) + (", ..." if len(names) > SHOWN_NAMES else "")
            lines.append(f"{key:<13} {len(names)}: {shown}")
    if "threshold" in info:
        tau = info["threshold"]
        lines.append(f"threshold     {'none' if tau is None else f'{tau:.4f}'} (chosen on {info['threshold_from']})")
    dev = ", ".join(f"{k} {v:.4f}" for k, v in info["best_dev"].items() if isinstance(v, float) and k != "threshold")
    lines.append(f"best epoch    {info['best_epoch']} of {info['epochs_run']} (stopped: {info['stopped']})"
                 + (f"; dev {dev}" if dev else "; no dev set"))
    lines += textwrap.wrap(" ".join(f"{k}={show_value(v)}" for k, v in info["options"].items()), 110,
                           initial_indent="options       ", subsequent_indent=" " * 14)
    lines.append(f"training data {info['training_data']}")
    lines.append("trained with  " + ", ".join(f"{k} {v or 'unknown'}" for k, v in info["trained_with"].items()))
    return lines


def _yes(value) -> str:
    return "yes" if value else "no"
