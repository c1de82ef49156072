"""The ``inspect`` stage: what a data set holds, before training on it (spaCy's ``debug data`` is the model).

For DATA (and a ``dev`` file): records, sequences, tokens, distinct words, sequence length
percentiles, tag and entity counts, label counts, duplicate flags. With ``dev``: its
out-of-vocabulary rate (against ``model``'s or ``vocab``'s vocabulary, else against DATA's
words) and the tags and labels it holds that DATA does not (a model trained on DATA can never
predict them: a warning). With ``model``/``vocab``: DATA's own out-of-vocabulary rate and the
tags/labels of DATA and dev missing from it. Every input is read once, memory flat in its length
(counts, not records).

Returns (JSON for stdout, Report with the human summary for stderr), like ``eval``.
"""
from seqtool.data.datastats import DataStats, oov, unseen
from seqtool.data.jsonl import STDIN
from seqtool.data.readers import Source
from seqtool.data.vocab import Vocab, prepare
from seqtool.errors import UsageError
from seqtool.stages.base import Report, progress_bar, source_warnings
from seqtool.wording import plural

SHOWN = 12          # tags, labels and examples listed per line in the human summary


def run_inspect(input: str = STDIN, *, model: str | None = None, vocab: str | None = None,
                dev: str | None = None, format: str | None = None, skip_invalid: bool = False,
                progress: bool | None = None) -> tuple[dict, Report]:
    """(statistics for stdout, Report with the human summary and the warnings for stderr)."""
    if model is not None and vocab is not None:
        raise UsageError("give --model or --vocab (the vocabulary to measure against), not both")
    if dev is not None and dev == input == STDIN:
        raise UsageError("DATA and --dev cannot both be stdin")
    reference, ref_name = _reference(model, vocab)
    data_src = Source(input, format, skip_invalid=skip_invalid)
    data = _count(data_src, progress, "data")
    result = {"data": _describe(data, reference)}
    lines = _summary("data", data_src.name, data, result["data"], ref_name)
    warnings = source_warnings(data_src)
    if dev is not None:
        dev_src = Source(dev, format, skip_invalid=skip_invalid)
        dev_stats = _count(dev_src, progress, "dev")
        result["dev"] = _describe(dev_stats, reference, data)
        lines += _summary("dev", dev_src.name, dev_stats, result["dev"], ref_name or data_src.name)
        warnings += source_warnings(dev_src)
        for kind in ("tags", "labels"):
            missing = result["dev"].get(f"{kind}_not_in_data")
            if missing:
                warnings.append(f"{dev_src.name}: {plural(len(missing), kind[:-1])} that {data_src.name} never has "
                                f"(a model trained on it cannot predict them): {_listed(missing)}")
    if ref_name is not None:
        for part in result.values():
            for kind in ("tags", "labels"):
                missing = part.get(f"{kind}_not_in_reference")
                if missing:
                    warnings.append(f"{plural(len(missing), kind[:-1])} not in {ref_name}: {_listed(missing)}")
    if ref_name is not None:
        result["reference"] = ref_name
    return result, Report("\n".join(lines), warnings)


def _reference(model: str | None, vocab: str | None) -> tuple[Vocab | None, str | None]:
    """The vocabulary to measure against (a model's or a saved one) and its name, or (None, None)."""
    if model is not None:
        from seqtool.model.modelio import load_model

        return Vocab.from_dict(load_model(model)[2], model), model
    if vocab is not None:
        return Vocab.from_json(vocab), vocab
    return None, None


def _count(src: Source, progress: bool | None, desc: str) -> DataStats:
    stats = DataStats()
    for record in progress_bar(src.map(prepare), progress, desc):
        stats.add(record)
    return stats


def _describe(stats: DataStats, reference: Vocab | None, train: DataStats | None = None) -> dict:
    """The JSON of one input: its counts, and what it has that ``train`` (DATA) or ``reference`` lacks."""
    out = stats.to_dict()
    if reference is not None:
        out["oov"] = oov(stats.words, vocab=reference)
        out["tags_not_in_reference"] = unseen(stats.tags, reference.tags.names)
        out["labels_not_in_reference"] = unseen(stats.labels, reference.labels.names)
    elif train is not None:
        out["oov"] = oov(stats.words, known=train.words)
    if train is not None:
        out["tags_not_in_data"] = unseen(stats.tags, train.tags)
        out["labels_not_in_data"] = unseen(stats.labels, train.labels)
    return out


def _summary(what: str, name: str, stats: DataStats, described: dict, against: str | None) -> list[str]:
    """The human lines for one input."""
    lines = [f"{what} {name}: {plural(stats.records, 'record')}, {plural(stats.sequences, 'sequence')}, "
             f"{plural(stats.tokens, 'token')}, {plural(len(stats.words), 'distinct word')}"]
    length = described["length"]
    if length:
        lines.append("  length in tokens: " + ", ".join(f"{k} {v}" for k, v in length.items()))
    for key in ("tags", "entities", "labels", "is_duplicate"):
        if key in described:
            lines.append(f"  {key}: " + _listed([f"{k} {v}" for k, v in described[key].items()]))
    if "oov" in described:
        o = described["oov"]
        lines.append(f"  out of vocabulary (against {against}): {o['rate']:.1%} of the tokens, "
                     f"{plural(o['distinct'], 'distinct word')} ({o['distinct_rate']:.1%})"
                     + (f", e.g. {', '.join(o['examples'][:5])}" if o["examples"] else ""))
    return lines


def _listed(items: list) -> str:
    shown = ", ".join(map(str, items[:SHOWN]))
    return shown + (f", ... ({len(items) - SHOWN} more)" if len(items) > SHOWN else "")
