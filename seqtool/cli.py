"""The ``seqtool`` command line: thin click commands over plain functions.

Every command parses options, opens streams and calls one function that the
YAML runner calls too. Heavy modules (numpy, numba) are imported inside the
commands so that ``seqtool --help`` stays fast.
"""
import gc
import os
import sys

import click

# Kernel threads are numba's; OpenBLAS's own pool (numpy's matmuls) would spin on the same cores and stall
# numba's parallel regions (measured: a training step 31 ms with one BLAS thread, 240+ ms without). Set before
# numpy loads; a user's explicit setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from seqtool import __version__
from seqtool.cliopts import (QUIET_HELP, THREADS_HELP, VERBOSE_HELP, Settings, common_options, complete_dirs,
                             complete_files, read_options)
from seqtool.errors import EXIT_INTERRUPTED, EXIT_OK, SeqtoolError, UsageError
from seqtool.data.writers import WRITE_FORMATS
from seqtool.distributed import stage_function
from seqtool.kernels import CELL_GATES
from seqtool.model.defaults import TASKS, default_text


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for `cat big | head`


class _Group(click.Group):
    """The ``seqtool`` group: a SeqtoolError or a closed pipe in any command becomes its exit code.

    Done here, not in ``main``, so that click's test runner sees the same
    messages and codes as a user does.
    """

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SeqtoolError as e:
            click.echo(f"seqtool {ctx.invoked_subcommand}: {e}", err=True)
            ctx.exit(e.exit_code)
        except BrokenPipeError:
            # The reader went away (``seqtool ... | head``): exit quietly. Point stdout at
            # devnull so the interpreter's final flush does not raise again (Python docs,
            # "Note on SIGPIPE").
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(EXIT_BROKEN_PIPE)


def _show_version(ctx, param, value):
    if not value or ctx.resilient_parsing:
        return
    from seqtool.runtime import library_versions

    v = library_versions()    # from the packages' metadata: importing numba would take ~0.5 s
    click.echo(f"seqtool, version {__version__} (numpy {v['numpy']}, numba {v['numba']}, Python {v['python']})")
    ctx.exit()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_show_version,
              help="Show the version, with numpy's, numba's and Python's, and exit.")
@click.option("-v", "--verbose", count=True, help=VERBOSE_HELP)
@click.option("-q", "--quiet", is_flag=True, help=QUIET_HELP)
@click.option("--threads", type=click.IntRange(1, None), envvar="SEQTOOL_THREADS", help=THREADS_HELP)
@click.pass_context
def cli(ctx, verbose, quiet, threads):
    """Train and run sequence models on text, as JSON Lines stages.

    \b
    seqtool vocab -o vocab.json < train.jsonl | seqtool pad --batch-size 32
    """
    ctx.obj = Settings(verbose=verbose, quiet=quiet, threads=threads)


def _stdout():
    return sys.stdout.buffer   # (click's get_binary_stream is deprecated in click 8.5; CliRunner swaps sys.stdout)


def _finish(settings: Settings, report) -> None:
    """Print a stage's Report on stderr: warnings always, the summary unless -q."""
    name = click.get_current_context().info_name
    lines = report.warnings if settings.quiet else [*report.warnings, report.summary]
    for line in lines:
        click.echo(f"seqtool {name}: {line}", err=True)


input_argument = click.argument("input", default="-", metavar="[INPUT]", shell_complete=complete_files)
skip_invalid_option = click.option(
    "--skip-invalid", is_flag=True,
    help="Skip records that break the contract (their count goes to stderr) instead of stopping.")


@cli.command()
@common_options
@input_argument
@click.option("-o", "--output", metavar="FILE", help="Build a vocabulary and save it to FILE (vocab.json).")
@click.option("--vocab", "vocab_file", metavar="FILE", help="Apply the vocabulary saved in FILE instead (streams).")
@read_options
@click.option("--token-column", type=int, default=1, show_default=True,
              help="conll: column of the tokens, from 1 (negative: from the end).")
@click.option("--tag-column", type=int, default=-1, show_default=True,
              help="conll: column of the tags (-1 = last; 0 = the file has no tags).")
@click.option("--min-count", type=click.IntRange(1), default=1, show_default=True,
              help="Keep words seen at least N times; the rest read as <UNK>.")
@click.option("--max-size", type=click.IntRange(1), help="Keep at most N words (besides <PAD> and <UNK>).")
@click.option("--lowercase", is_flag=True, help="Look words up in lower case (tokens are emitted as written).")
@click.option("--char-min-count", type=click.IntRange(1), default=1, show_default=True,
              help="Keep characters seen at least N times in the character vocabulary.")
@skip_invalid_option
@click.pass_obj
def vocab(settings, input, output, vocab_file, fmt, token_column, tag_column, min_count, max_size,
          lowercase, char_min_count, skip_invalid):
    """Add integer ids to records, building a vocabulary (-o) or applying one (--vocab).

    INPUT is a path or - (stdin, the default): JSONL records, a CoNLL column
    file or plain text, one example per line. Every record comes out with ids
    (and tag_ids, label_id, q1_ids, q2_ids when it has tags, a label or a
    question pair); text, q1 and q2 also come out tokenized as tokens,
    q1_tokens and q2_tokens. Every other key passes through.

    Building (-o) reads the whole input before writing: ids are <PAD>=0,
    <UNK>=1, then the words by count. Applying (--vocab) streams; an unknown
    word reads as <UNK>, an unknown tag or label is an error.

    \b
    seqtool vocab -o vocab.json train.jsonl > train.ids.jsonl
    seqtool vocab --vocab vocab.json dev.conll > dev.ids.jsonl
    """
    from seqtool.stages.vocab import run_vocab

    _finish(settings, run_vocab(
        input, _stdout(), output=output, vocab=vocab_file, format=fmt, token_column=token_column,
        tag_column=tag_column, min_count=min_count, max_size=max_size, char_min_count=char_min_count,
        lowercase=lowercase, skip_invalid=skip_invalid, progress=False if settings.quiet else None))


@cli.command()
@common_options
@input_argument
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True, help="Records per batch.")
@click.option("--bucket", type=click.IntRange(0), default=0, show_default=True,
              help="Sort records by length within windows of N batches, to pad less (0: keep the order).")
@click.option("--length", type=click.IntRange(1),
              help="Pad (and truncate) every sequence to L tokens instead of the batch's longest.")
@skip_invalid_option
@click.pass_obj
def pad(settings, input, batch_size, bucket, length, skip_invalid):
    """Group records into batches and pad their id sequences with 0.

    INPUT is the JSONL output of seqtool vocab (a path or -, the default). Each
    record comes out with ids and tag_ids padded to the longest in its batch
    (or to --length), a mask (1 = token, 0 = padding), its true length and its
    batch number; pairs get q1_ids and q2_ids padded, with q1_mask, q1_length,
    q2_mask and q2_length. Every other key passes through. Streams: memory
    holds one batch (or one --bucket window).

    \b
    seqtool vocab -o vocab.json train.jsonl | seqtool pad --batch-size 32 --bucket 20
    """
    from seqtool.stages.pad import run_pad

    _finish(settings, run_pad(input, _stdout(), batch_size=batch_size, bucket=bucket, length=length,
                              skip_invalid=skip_invalid, progress=False if settings.quiet else None))


# ---------------------------------------------------------------- train, tag, eval, dedupe

def _print_json(obj) -> None:
    import json

    click.echo(json.dumps(obj, default=float))


model_option = click.option("-m", "--model", required=True, metavar="DIR", shell_complete=complete_dirs,
                            help="A model directory (seqtool train -o).")


class DaskAddress(click.ParamType):
    """``--dask``: a scheduler URL or local:N, checked before anything runs (pipelines too)."""

    name = "Dask address (tcp://HOST:PORT or local:N)"

    def convert(self, value, param, ctx):
        from seqtool.distributed.cluster import parse_address

        try:
            parse_address(value if isinstance(value, str) else "")
        except UsageError:
            self.fail(f"{value!r}: expected a scheduler address (tcp://HOST:PORT) or local:N (N >= 1)", param, ctx)
        return value


inputs_argument = click.argument("input", nargs=-1, metavar="[INPUT]...", shell_complete=complete_files)
dask_option = click.option(
    "--dask", type=DaskAddress(), metavar="ADDRESS",
    help="Run on a Dask cluster: a scheduler (tcp://HOST:8786) or local:N worker processes (pip install "
         "'seqtool[dask]', or '.[dask]' from a checkout). INPUT... are then files or globs, read by the workers.")
outdir_option = click.option(
    "-o", "--output", metavar="DIR",
    help="With --dask: write the records to DIR/part-00000.jsonl, ... (in input order) instead of stdout.")


def _inputs(inputs: tuple, dask: str | None, output: str | None):
    """--dask: the INPUT list; otherwise the one INPUT (default -), which is all one process reads."""
    if dask:
        return list(inputs)
    if output is not None:
        raise UsageError("-o DIR (part files) goes with --dask; without it the records go to stdout")
    if len(inputs) > 1:
        raise UsageError("several INPUTs go with --dask; for one process, cat them into one stream")
    return inputs[0] if inputs else "-"
batch_option = click.option("--batch-size", type=click.IntRange(1), default=256, show_default=True,
                            help="Records per prediction batch (memory is flat in the input's length).")


def train_option(*decls, **kw):
    """An option of ``seqtool train`` whose help ends with its default per task, rendered from the
    tables of model/defaults.py that training reads (so --help cannot drift from what runs)."""
    name = next(d for d in decls if d.startswith("--")).split("/")[0][2:].replace("-", "_")
    kw["help"] = f"{kw.get('help', '')} {default_text(name)}".strip()
    return click.option(*decls, **kw)


@cli.command()
@common_options
@click.argument("input", required=False, metavar="[INPUT]")
@click.option("--task", type=click.Choice(TASKS),
              help="What to train [from the first record: tags -> tagger, label -> classifier, "
                   "q1/q2 + is_duplicate -> siamese].")
@click.option("--train", "train_file", metavar="FILE", help="The training records, as INPUT (give one of them).")
@click.option("--dev", metavar="FILE", help="Labelled records to score every epoch (early stopping, threshold).")
@click.option("-o", "--output", metavar="DIR", help="Model directory, written atomically (required).")
@click.option("--vocab", "vocab_file", metavar="FILE", help="The vocabulary the input's ids come from.")
@read_options
@click.option("--config", "config_file", metavar="FILE.yaml",
              help="Options from a YAML file of option: value pairs (the command line wins).")
@train_option("--cell", type=click.Choice([*CELL_GATES, "none"]), help="Recurrent cell; none = mean of words.")
@train_option("--bidirectional/--unidirectional", default=None, help="Read both ways.")
@train_option("--layers", type=click.IntRange(1), help="Stacked recurrent layers.")
@train_option("--embed", type=click.IntRange(1), help="Word embedding size.")
@train_option("--hidden", type=click.IntRange(1), help="Hidden units per direction.")
@train_option("--dropout", type=click.FloatRange(0, 1, max_open=True), help="Dropout on embeddings and between layers.")
@train_option("--word-dropout", type=click.FloatRange(0, 1, max_open=True), help="Rate of words replaced by <UNK> in training.")
@train_option("--activation", type=click.Choice(["tanh", "relu"]), help="rnn cell: tanh, or relu (IRNN).")
@train_option("--residual/--no-residual", default=None, help="Skip connections between stacked layers.")
@train_option("--pool", type=click.Choice(["mean", "last", "max"]), help="How a sequence becomes a vector.")
@train_option("--margin", type=float, help="Triplet-loss margin alpha.")
@train_option("--hard-negatives/--no-hard-negatives", default=None,
              help="Also learn from the non-duplicate pairs, each question the other's negative.")
@train_option("--crf/--no-crf", default=None, help="A linear-chain CRF output (Viterbi decoding).")
@train_option("--bio-constraints/--no-bio-constraints", default=None,
              help="--crf: never decode I-X after O or B-Y, or at the start (BIO tag sets).")
@train_option("--char/--no-char", default=None, help="Character CNN features beside each word.")
@train_option("--char-dim", type=click.IntRange(1), help="--char: character embedding size.")
@train_option("--char-filters", type=click.IntRange(1), help="--char: CNN filters, the feature size.")
@train_option("--char-window", type=click.IntRange(1), help="--char: CNN window in characters, odd.")
@train_option("--shape-dim", type=click.IntRange(0), help="Word-shape embedding size (0: none).")
@train_option("--embeddings", metavar="FILE", help="Initialise word vectors from a GloVe/word2vec text file (.gz ok).")
@train_option("--freeze-embeddings/--train-embeddings", default=None, help="Keep the word vectors fixed.")
@train_option("--optimizer", type=click.Choice(["adam", "sgd"]), help="Optimiser (sgd: momentum 0.9).")
@train_option("--lr", type=click.FloatRange(0, min_open=True), help="Learning rate.")
@train_option("--lr-decay", type=click.FloatRange(0), help="lr / (1 + decay * epoch).")
@train_option("--weight-decay", type=click.FloatRange(0), help="L2 weight decay.")
@train_option("--clip-norm", type=click.FloatRange(0), help="Clip the global gradient norm (0: off).")
@train_option("--clip-value", type=click.FloatRange(0), help="Clip every gradient entry to +-V.")
@train_option("--epochs", type=click.IntRange(1), help="At most this many passes.")
@train_option("--patience", type=click.IntRange(0), help="Stop after N epochs without a better dev score (0: never).")
@train_option("--batch-size", type=click.IntRange(1),
              help="Records per step (records from seqtool pad train in pad's batches instead).")
@train_option("--max-time", type=click.FloatRange(0, min_open=True),
              help="Stop after this many seconds: mid-epoch, at the next batch; that epoch is scored like a "
                   "full one and the best epoch is kept.")
@train_option("--seed", type=int, help="Random seed (same seed, data and options: the same weights).")
@train_option("--min-count", type=click.IntRange(1), help="Vocabulary: keep words seen at least N times.")
@train_option("--max-size", type=click.IntRange(1), help="Vocabulary: at most N words.")
@train_option("--lowercase/--no-lowercase", default=None, help="Vocabulary: look words up in lower case.")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint DIR.ckpt of an interrupted run.")
@skip_invalid_option
@click.pass_context
def train(ctx, **given):
    """Train a tagger, classifier or Siamese model and save it to a model directory.

    INPUT (or --train FILE) is a path or - (stdin, the default): raw records in
    any format (the vocabulary is built here), or the id'd stream of seqtool
    vocab | seqtool pad with the --vocab it used (it trains in pad's batches).
    Without --task, the first record says which model to train. Options that
    the chosen model would not read are refused. Progress and one line per
    epoch go to stderr; a one-line JSON summary goes to stdout. Ctrl-C saves a
    checkpoint (continue with --resume) and exits 130.

    \b
    seqtool train train.jsonl --dev dev.jsonl -o models/ner
    seqtool vocab -o v.json < train.jsonl | seqtool pad | seqtool train --vocab v.json -o m
    """
    from seqtool.stages.train import run_train

    settings, opts = ctx.obj, _with_config(ctx, given)
    inputs = [v for v in (opts.pop("input"), opts.pop("train_file")) if v is not None]
    if len(inputs) > 1:
        raise UsageError("give the training records once: as INPUT or as --train, not both")
    if opts["output"] is None:
        raise UsageError("give -o DIR: the model directory to write")
    summary, report = run_train(inputs[0] if inputs else "-", vocab=opts.pop("vocab_file"), format=opts.pop("fmt"),
                                threads=settings.threads, progress=False if settings.quiet else None, **opts)
    _print_json(summary)
    _finish(settings, report)


def _with_config(ctx, given: dict) -> dict:
    """The command's parameters: each from the command line, else from --config FILE, else its default."""
    path = given.pop("config_file")
    if path is None:
        return given
    from click.core import ParameterSource
    from seqtool.pipeline.spec import options_file

    from_file = options_file(path, ctx.command.name)
    typed = {name for name in given if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE,
                                                                          ParameterSource.ENVIRONMENT)}
    if typed & {"input", "train_file"}:          # one training input: the command line's
        typed |= {"input", "train_file"}
    return {**given, **{k: v for k, v in from_file.items() if k not in typed}}


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
    _finish(settings, stage(model, _inputs(input, dask, output), _stdout(), **opts))


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
    result, report = stage(_inputs(input, dask, None), **opts)
    _print_json(result)
    _finish(settings, report)


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
    _finish(settings, stage(model, _inputs(input, dask, output), _stdout(), **opts))


@cli.command()
@common_options
@click.option("-m", "--model", metavar="DIR", help="The model to report on (seqtool train -o).")
@click.option("--eval", "evals", multiple=True, metavar="FILE",
              help="Labelled records to score and show, as seqtool eval does (repeatable).")
@click.option("--runs", metavar="LOG", help="A pipeline's run log (STATE_DIR/NAME.log.jsonl) instead of a model.")
@click.option("-o", "--output", metavar="FILE", help="The HTML page [report.html; runs.html with --runs].")
@click.option("--png", metavar="DIR", help="Also write every chart as DIR/NAME.png.")
@batch_option
@click.pass_obj
def report(settings, model, evals, runs, output, png, batch_size):
    """Write one self-contained HTML page of a model's training and results, or of a pipeline's runs.

    With -m: the training history (loss, dev scores, gradient norms, clipped
    and skipped steps, learning rate, speed), the results on each --eval file
    (scored as seqtool eval scores them) and the model's facts. With --runs:
    each run's metrics, promotions, step durations and failures. Charts are
    inline SVG; the page fetches nothing. Needs the report extra
    (pip install 'seqtool[report]'). The page's path goes to stdout.

    \b
    seqtool report -m models/ner --eval dev.jsonl --eval test.jsonl -o ner.html
    seqtool report --runs work/retrain/retrain.log.jsonl -o runs.html
    """
    from seqtool.stages.report import run_report

    result = run_report(model, evals, runs=runs, output=output, png=png, batch_size=batch_size,
                        threads=settings.threads)
    click.echo(result.path)
    _finish(settings, result)


@cli.command()
@common_options
@input_argument
@click.option("-m", "--model", metavar="DIR",
              help="Measure out-of-vocabulary words and unknown tags against this model.")
@click.option("--vocab", "vocab_file", metavar="FILE", help="... or against this saved vocabulary (seqtool vocab -o).")
@click.option("--dev", metavar="FILE", help="A dev file: its statistics, OOV rate and tags/labels that INPUT lacks.")
@read_options
@skip_invalid_option
@click.pass_obj
def inspect(settings, input, model, vocab_file, dev, fmt, skip_invalid):
    """What a data set holds: counts, lengths, tags, labels, out-of-vocabulary rate.

    INPUT (the training data) and --dev: records, tokens, sentence length
    percentiles, tag, entity and label counts. The dev file's out-of-vocabulary
    rate is measured against --model or --vocab when given, else against INPUT's
    words; tags or labels in dev that INPUT never has are a warning. JSON on
    stdout, the summary on stderr.

    \b
    seqtool inspect train.jsonl --dev dev.jsonl
    seqtool inspect -m models/ner new.jsonl
    """
    from seqtool.stages.inspect import run_inspect

    result, report = run_inspect(input, model=model, vocab=vocab_file, dev=dev, format=fmt,
                                 skip_invalid=skip_invalid, progress=False if settings.quiet else None)
    _print_json(result)
    _finish(settings, report)


@cli.command()
@common_options
@click.argument("model", metavar="MODEL")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout, for scripts.")
def info(model, as_json):
    """Describe a model directory: task, architecture, parameters, vocabulary, tags or labels,
    best dev score, the training data's fingerprint and the versions it was trained with.

    \b
    seqtool info models/ner
    seqtool info --json models/ner | jq .best_dev
    """
    from seqtool.stages.info import info_lines, model_info

    described = model_info(model)
    if as_json:
        _print_json(described)
    else:
        click.echo("\n".join(info_lines(described)))


@cli.command()
@common_options
@input_argument
@click.option("--to", type=click.Choice(WRITE_FORMATS), required=True, help="The format to write.")
@read_options
@click.option("--token-column", type=int, default=1, show_default=True,
              help="conll input: column of the tokens, from 1 (negative: from the end).")
@click.option("--tag-column", type=int, default=-1, show_default=True,
              help="conll input: column of the tags (-1 = last; 0 = the file has no tags).")
@skip_invalid_option
@click.pass_obj
def convert(settings, input, to, fmt, token_column, tag_column, skip_invalid):
    """Write records in another format: any format seqtool reads to jsonl, conll, fasttext, csv or tsv.

    INPUT is a path or - (stdin, the default), read as every stage reads it
    (--format, --encoding, --columns; .gz/.bz2/.xz/.zip decompressed). Streams.

    \b
    seqtool convert ner_dataset.csv.zip --encoding cp1252 --to jsonl > gmb.jsonl
    seqtool convert train.jsonl --to conll > train.conll
    """
    from seqtool.stages.convert import run_convert

    _finish(settings, run_convert(input, _stdout(), to=to, format=fmt, token_column=token_column,
                                  tag_column=tag_column, skip_invalid=skip_invalid))


@cli.command(name="run")
@common_options
@click.argument("pipeline", metavar="PIPELINE.yaml", shell_complete=complete_files)
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE", help="Override a variable of the file's vars.")
@click.option("--dry-run", is_flag=True, help="Check the file and print what would run (stdout); run nothing.")
@click.option("--force", is_flag=True, help="Run every selected step, even when unchanged since its last run.")
@click.option("--from", "from_step", metavar="STEP", help="Run STEP and the steps after it only.")
@click.option("--only", multiple=True, metavar="STEP", help="Run STEP only (repeatable).")
@click.option("--wait", is_flag=True, help="If another run of the pipeline holds its lock, wait instead of exit 3.")
@click.pass_obj
def run(settings, pipeline, sets, dry_run, force, from_step, only, wait):
    """Run the steps of a YAML pipeline: vocab, pad, train, tag, eval, dedupe, report, promote.

    Every step is checked before the first runs (an error names the file and
    line, exit 2). A step whose inputs, options and seqtool version are
    unchanged since its last successful run is skipped. A lock keeps two runs
    of one pipeline apart (exit 3); every event goes to a JSONL run log.

    \b
    seqtool run pipelines/quickstart.yaml
    seqtool run pipelines/retrain.yaml --set epochs=5 --dry-run
    """
    from seqtool.pipeline.run import run_pipeline

    _finish(settings, run_pipeline(pipeline, sets=sets, dry_run=dry_run, force=force, from_step=from_step,
                                   only=only, wait=wait, quiet=settings.quiet, threads=settings.threads,
                                   out=sys.stdout))


def main():
    """Entry point: runs the CLI; click's own errors and Ctrl-C become one line and an exit code."""
    try:
        code = cli.main(prog_name="seqtool", standalone_mode=False)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("seqtool: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        # What is still alive is left to the OS: the interpreter's last collection would walk
        # numba's type registries, ~0.3 s of every exit once a kernel ran (atexit handlers still run).
        gc.freeze()
    sys.exit(code if isinstance(code, int) else EXIT_OK)
