"""The ``eval`` stage: score a model on labelled records, or score records already tagged.

Taggers: token accuracy over real tokens and conlleval's entity P/R/F1,
overall and per type. Classifiers: accuracy, per-class P/R/F1, confusion.
Counts are accumulated a chunk at a time, so memory is flat in the input.
"""
import itertools

from seqtool.errors import DataError, UsageError
from seqtool.data.datastats import unseen
from seqtool.data.jsonl import STDIN
from seqtool.data.metrics import (ClassifierScorer, EntityScorer, PairScorer, format_classifier_report,
                             format_entity_report, format_pair_report)
from seqtool.data.readers import Source
from seqtool.stages.base import Report, source_warnings
from seqtool.wording import plural


def run_eval(input: str = STDIN, *, model: str | None = None, pred: bool = False, format: str | None = None,
             batch_size: int = 256, threshold: float | None = None, threads: int | None = None,
             skip_invalid: bool = False) -> tuple[dict, Report]:
    """(metrics for stdout, Report with the human table for stderr)."""
    if (model is None) == (not pred):
        raise UsageError("give -m MODEL to tag and score labelled records, or --pred for records already tagged")
    src = Source(input, format, skip_invalid=skip_invalid)
    known = None                                                # the model's tags or labels
    if pred:
        task, records = None, iter(src)                         # (line, record)
    else:
        from seqtool.predict import LoadedModel, predicted
        from seqtool.runtime import configure

        configure(threads)
        loaded = LoadedModel(model)
        task = loaded.task
        if task == "siamese":
            return _eval_pairs(model, src, threshold, batch_size)
        records = predicted(loaded, src.map_numbered(loaded.encode), batch_size)
        known = loaded.vocab.tags.names if task == "tagger" else loaded.vocab.labels.names
    scorer, n, gold = None, 0, set()
    for n, (lineno, rec) in enumerate(records, 1):
        if scorer is None:
            task = task or guess_task(rec, src.name, lineno)
            if task == "siamese":
                return _score_pairs(itertools.chain([(lineno, rec)], records), src, threshold)
            scorer = EntityScorer() if task == "tagger" else ClassifierScorer()
        add_record(scorer, task, rec, src.name, lineno)
        gold.update(rec.get("gold_tags") or (rec.get("gold_label"),))
    if scorer is None:
        return nothing_scored(task, src)
    result = scorer.result()
    table = format_entity_report(result) if task == "tagger" else format_classifier_report(result)
    never = unseen(gold, known) if known is not None else []
    warning = (f"{plural(len(never), 'gold ' + ('tag' if task == 'tagger' else 'label'))} the model never saw in "
               f"training (scored as errors, it cannot predict them): {', '.join(map(str, never))}") if never else None
    return {"task": task, "records": n, **result}, Report(table.rstrip("\n"), source_warnings(src, warning))


def nothing_scored(task: str | None, src: Source) -> tuple[dict, Report]:
    """An empty input scores nothing: exit 0 like every other stage on empty input (an empty shard in a
    ``tag | eval --pred`` pipeline is not an error), with JSON a script can still read and a warning that
    always shows, so an empty dev file does not pass unseen."""
    report = Report(plural(0, "record"), source_warnings(src, "no records: nothing to score"))
    return {"task": task, "records": 0}, report


def guess_task(rec: dict, name: str, n: int) -> str:
    if "gold_tags" in rec and "tags" in rec:
        return "tagger"
    if "gold_label" in rec and "label" in rec:
        return "classifier"
    if "gold_is_duplicate" in rec and "similarity" in rec:
        return "siamese"
    raise DataError("--pred needs tagged records: \"tags\" with \"gold_tags\", \"label\" with \"gold_label\", "
                    "or \"similarity\" with \"gold_is_duplicate\" (the output of seqtool tag or dedupe on "
                    "labelled input)", name, n)


def _eval_pairs(model: str, src: Source, threshold: float | None, batch_size: int) -> tuple[dict, Report]:
    """Siamese model on labelled pairs: dedupe them in memory-flat chunks, then score at tau."""
    import tempfile

    from seqtool.data.jsonl import parse_record
    from seqtool.predict import load_siamese
    from seqtool.stages.dedupe import write_pairs

    loaded, tau = load_siamese(model, threshold)
    with tempfile.TemporaryFile() as buf:     # the pairs with their similarity, off the heap
        write_pairs(loaded, tau, src, buf, batch_size, require_gold=True)    # a pair without gold: its line
        buf.seek(0)
        return _score_pairs(enumerate(map(parse_record, buf), 1), src, tau)


def _score_pairs(records, src: Source, threshold: float | None) -> tuple[dict, Report]:
    scorer = PairScorer()
    sims, gold = [], []
    for n, rec in records:
        if rec.get("gold_is_duplicate") is None:
            raise DataError("pair has no gold \"is_duplicate\" to score against", src.name, n)
        sims.append(rec["similarity"])
        gold.append(int(rec["gold_is_duplicate"]))
    if not sims:
        return nothing_scored("siamese", src)
    scorer.add(sims, gold)
    result = scorer.result(threshold)
    return {"task": "siamese", "records": len(sims), **result}, Report(format_pair_report(result).rstrip("\n"))


def add_record(scorer, task: str, rec: dict, name: str, n: int) -> None:
    if task == "tagger":
        gold = rec.get("gold_tags")
        if gold is None:
            raise DataError("record has no gold \"tags\" to score against", name, n)
        try:
            scorer.add(gold, rec["tags"])
        except DataError as e:
            raise DataError(e.message, name, n) from None
    else:
        if rec.get("gold_label") is None:
            raise DataError("record has no gold \"label\" to score against", name, n)
        scorer.add([rec["gold_label"]], [rec["label"]])
