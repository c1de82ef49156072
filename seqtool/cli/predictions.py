"""Commands that run a model over records: tag, eval, dedupe (in one process or on Dask)."""
import click

from seqtool.cli.app import cli, finish, print_json, stdout
from seqtool.cli.options import (batch_option, common_options, dask_option, inputs_argument, inputs_for,
                                 model_option, outdir_option, read_options, skip_invalid_option)
from seqtool.distributed import stage_function
from seqtool.errors import UsageError


@cli.command()
@common_options
@model_option
@inputs_argument
@read_options
@click.option("--output-format", type=click.Choice(["jsonl", "conll", "inline", "fasttext"]), default="jsonl",
              show_default=True,
              help="conll: token [gold] predicted per line, for conlleval-style tools; inline: one line per "
                   "record to read, [John]PER lives in [Paris]LOC (a classifier: label, tab, text); fasttext "
                   "(classifiers): __label__x 0.97 per line, as fastText predicts.")
@click.option("--text", "texts", multiple=True, metavar="TEXT",
              help="Tag TEXT instead of reading INPUT (repeatable: one record each).")
@batch_option
@skip_invalid_option
@dask_option
@outdir_option
@click.pass_obj
def tag(settings, model, input, fmt, output_format, texts, batch_size, skip_invalid, dask, output):
    """Add a model's predictions to every record: tags and entities, or label and probs.

    Records stream through in order, batch by batch. A gold tags or label in
    the input is kept as gold_tags or gold_label (seqtool eval --pred scores it).

    \b
    seqtool tag -m models/ner < new.jsonl > tagged.jsonl
    seqtool tag -m models/ner --output-format inline --text "John lives in Paris"
    seqtool tag -m models/ner --dask local:4 'data/*.jsonl' -o tagged/
    """
    opts = {"format": fmt, "output_format": output_format, "batch_size": batch_size, "threads": settings.threads,
            "skip_invalid": skip_invalid, "progress": False if settings.quiet else None}
    stage = stage_function("tag", dask)
    if dask:
        if texts:
            raise UsageError("--text goes without --dask (a few texts are tagged in this process)")
        opts.update(dask=dask, output=output)
    elif texts:
        opts.update(texts=list(texts))
    finish(settings, stage(model, inputs_for(input, dask, output), stdout(), **opts))


@cli.command(name="eval")
@common_options
@click.option("-m", "--model", metavar="DIR", help="Tag INPUT with this model and score it.")
@click.option("--pred", is_flag=True, help="INPUT is already tagged (seqtool tag or dedupe output): score it.")
@inputs_argument
@read_options
@click.option("--threshold", type=float, help="siamese: the similarity threshold [the model's].")
@batch_option
@skip_invalid_option
@dask_option
@click.pass_obj
def evaluate(settings, model, pred, input, fmt, threshold, batch_size, skip_invalid, dask):
    """Score a model on labelled records: the table on stderr, JSON on stdout.

    Taggers: token accuracy and conlleval's entity precision/recall/F1, overall
    and per type. Classifiers: accuracy, per-class P/R/F1, confusion matrix.
    Siamese: accuracy, precision, recall, F1 at the threshold, ROC AUC.

    \b
    seqtool eval -m models/ner dev.jsonl
    seqtool tag -m models/ner dev.jsonl | seqtool eval --pred
    """
    opts = {"model": model, "pred": pred, "format": fmt, "batch_size": batch_size, "threshold": threshold,
            "threads": settings.threads, "skip_invalid": skip_invalid}
    stage = stage_function("eval", dask)
    if dask:
        opts.update(dask=dask, progress=False if settings.quiet else None)
    result, report = stage(inputs_for(input, dask, None), **opts)
    print_json(result)
    finish(settings, report)


@cli.command()
@common_options
@model_option
@inputs_argument
@read_options
@click.option("--group", is_flag=True, help="Find duplicates within the stream of single texts.")
@click.option("--top-k", type=click.IntRange(1), help="List each record's K nearest neighbours instead.")
@click.option("--threshold", type=float, help="Similarity threshold tau [the model's, chosen on dev].")
@batch_option
@skip_invalid_option
@dask_option
@outdir_option
@click.pass_obj
def dedupe(settings, model, input, fmt, group, top_k, threshold, batch_size, skip_invalid, dask, output):
    """Duplicate detection with a Siamese model.

    Pairs (records with q1, q2): adds similarity and is_duplicate. With
    --group (records with text): adds group, duplicate_of and score, searching
    all pairs block by block in bounded memory.

    \b
    seqtool dedupe -m models/quora < pairs.jsonl
    seqtool dedupe -m models/quora --group < questions.jsonl
    seqtool dedupe -m models/quora --group --dask tcp://sched:8786 questions.jsonl -o groups/
    """
    opts = {"group": group, "top_k": top_k, "threshold": threshold, "format": fmt, "batch_size": batch_size,
            "threads": settings.threads, "skip_invalid": skip_invalid, "progress": False if settings.quiet else None}
    stage = stage_function("dedupe", dask)
    if dask:
        opts.update(dask=dask, output=output)
    finish(settings, stage(model, inputs_for(input, dask, output), stdout(), **opts))
