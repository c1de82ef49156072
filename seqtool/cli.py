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
from seqtool.errors import EXIT_INTERRUPTED, EXIT_OK, SeqtoolError, UsageError
from seqtool.data.readers import FORMATS
from seqtool.distributed import stage_function


class Settings:
    """Options of the ``seqtool`` group, shared by every command."""

    def __init__(self, verbose: int = 0, quiet: bool = False, threads: int | None = None):
        self.verbose = verbose
        self.quiet = quiet
        self.threads = threads


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


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="seqtool")
@click.option("-v", "--verbose", count=True, help="More detail on stderr.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or summaries on stderr (errors and warnings still shown).")
@click.option("--threads", type=click.IntRange(1, None), envvar="SEQTOOL_THREADS",
              help="Worker threads for the numeric kernels (default: all cores).")
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


input_argument = click.argument("input", default="-", metavar="[INPUT]")
format_option = click.option("--format", "fmt", type=click.Choice(FORMATS),
                             help="Input format [default: from the extension; jsonl for stdin].")
skip_invalid_option = click.option(
    "--skip-invalid", is_flag=True,
    help="Skip records that break the contract (their count goes to stderr) instead of stopping.")


@cli.command()
@input_argument
@click.option("-o", "--output", metavar="FILE", help="Build a vocabulary and save it to FILE (vocab.json).")
@click.option("--vocab", "vocab_file", metavar="FILE", help="Apply the vocabulary saved in FILE instead (streams).")
@format_option
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


def _read_config(path: str | None) -> dict:
    """Options from a YAML file (keys are the option names, with - or _); the command line wins."""
    if path is None:
        return {}
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except OSError as e:
        raise UsageError(e.strerror or str(e), path) from None
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        raise UsageError(f"not valid YAML: {getattr(e, 'problem', e)}", path, line + 1 if line is not None else None)
    if not isinstance(data, dict):
        raise UsageError("a config file holds option: value pairs", path)
    return {str(k).replace("-", "_"): v for k, v in data.items()}


model_option = click.option("-m", "--model", required=True, metavar="DIR", help="A model directory (seqtool train -o).")


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


inputs_argument = click.argument("input", nargs=-1, metavar="[INPUT]...")
dask_option = click.option(
    "--dask", type=DaskAddress(), metavar="ADDRESS",
    help="Run on a Dask cluster: a scheduler (tcp://HOST:8786) or local:N worker processes (pip install "
         "'seqtool[dask]'). INPUT... are then files or globs, read by the workers.")
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


@cli.command()
@click.option("--task", type=click.Choice(["tagger", "classifier", "siamese"]), help="What to train [default: tagger].")
@click.option("--train", "train_file", default="-", metavar="FILE",
              help="Training records: raw (any format) or the output of vocab | pad with --vocab [default: stdin].")
@click.option("--dev", metavar="FILE", help="Labelled records to score every epoch (early stopping, threshold).")
@click.option("-o", "--output", required=True, metavar="DIR", help="Model directory, written atomically.")
@click.option("--vocab", "vocab_file", metavar="FILE", help="The vocabulary the input's ids come from.")
@format_option
@click.option("--config", "config_file", metavar="FILE.yaml", help="Any of these options from a YAML file.")
@click.option("--cell", type=click.Choice(["rnn", "gru", "lstm", "none"]), help="Recurrent cell [lstm]; none = mean.")
@click.option("--bidirectional/--unidirectional", default=None, help="[tagger, siamese: bidirectional; classifier: not].")
@click.option("--layers", type=click.IntRange(1), help="Stacked recurrent layers [1].")
@click.option("--embed", type=click.IntRange(1), help="Word embedding size [tagger 100].")
@click.option("--hidden", type=click.IntRange(1), help="Hidden units per direction [tagger 128].")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), help="Dropout on embeddings and between layers.")
@click.option("--word-dropout", type=click.FloatRange(0, 1, max_open=True), help="Rate of words replaced by <UNK> in training [tagger, siamese 0.1; classifier 0.05].")
@click.option("--activation", type=click.Choice(["tanh", "relu"]), help="rnn cell: tanh, or relu (IRNN).")
@click.option("--residual/--no-residual", default=None, help="Skip connections between stacked layers.")
@click.option("--pool", type=click.Choice(["mean", "last", "max"]), help="classifier: how a sequence becomes a vector.")
@click.option("--margin", type=float, help="siamese: triplet-loss margin alpha [0.25].")
@click.option("--hard-negatives/--no-hard-negatives", default=None,
              help="siamese: also learn from the non-duplicate pairs, each question the other's negative [on].")
@click.option("--crf/--no-crf", default=None, help="tagger: a linear-chain CRF output (Viterbi decoding) [on].")
@click.option("--bio-constraints/--no-bio-constraints", default=None,
              help="tagger --crf: never decode I-X after O or B-Y, or at the start (BIO tag sets) [on].")
@click.option("--char/--no-char", default=None, help="tagger: character CNN features beside each word [on].")
@click.option("--char-dim", type=click.IntRange(1), help="--char: character embedding size [30].")
@click.option("--char-filters", type=click.IntRange(1), help="--char: CNN filters, the feature size [50].")
@click.option("--char-window", type=click.IntRange(1), help="--char: CNN window in characters, odd [3].")
@click.option("--shape-dim", type=click.IntRange(0), help="tagger: word-shape embedding size (0: none) [8].")
@click.option("--embeddings", metavar="FILE", help="Pretrained word vectors, a GloVe/word2vec text file (.gz ok): "
              "they initialise the table and their words join the vocabulary.")
@click.option("--vectors-limit", type=click.IntRange(0), help="--embeddings: only the file's first N words join the "
              "vocabulary (0: none, only training words get vectors) [all].")
@click.option("--freeze-embeddings/--train-embeddings", default=None, help="Keep the word vectors fixed [train them].")
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]))
@click.option("--lr", type=float, help="Learning rate.")
@click.option("--lr-decay", type=click.FloatRange(0), help="lr / (1 + decay * epoch) [tagger 0.05, others 0].")
@click.option("--weight-decay", type=click.FloatRange(0), help="L2 weight decay.")
@click.option("--clip-norm", type=click.FloatRange(0), help="Clip the global gradient norm (0: off) [5].")
@click.option("--clip-value", type=click.FloatRange(0), help="Clip every gradient entry to +-V.")
@click.option("--epochs", type=click.IntRange(1), help="At most this many passes [tagger 20, others 30].")
@click.option("--patience", type=click.IntRange(0), help="Stop after N epochs without a better dev score (0: never).")
@click.option("--batch-size", type=click.IntRange(1))
@click.option("--max-time", type=click.FloatRange(0, min_open=True), help="Stop after this many seconds.")
@click.option("--seed", type=int)
@click.option("--min-count", type=click.IntRange(1), help="Vocabulary: keep words seen at least N times.")
@click.option("--max-size", type=click.IntRange(1), help="Vocabulary: at most N words.")
@click.option("--lowercase/--no-lowercase", default=None, help="Vocabulary: look words up in lower case [tagger, siamese: on].")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint DIR.ckpt of an interrupted run.")
@skip_invalid_option
@click.pass_obj
def train(settings, task, train_file, dev, output, vocab_file, fmt, config_file, resume, skip_invalid, **options):
    """Train a tagger, classifier or Siamese model and save it to a model directory.

    Reads raw records (building the vocabulary itself) or the id'd stream of
    seqtool vocab | seqtool pad (give the --vocab it used). Progress and one
    line per epoch go to stderr; a one-line JSON summary goes to stdout.
    Ctrl-C saves a checkpoint (continue with --resume) and exits 130.

    \b
    seqtool train --task tagger --train train.jsonl --dev dev.jsonl -o models/ner
    seqtool vocab -o v.json < train.jsonl | seqtool pad | seqtool train --vocab v.json -o m
    """
    from seqtool.stages.train import run_train

    config = _read_config(config_file)
    given = {k: v for k, v in options.items() if v is not None}
    merged = {**config, **given}
    task = task or merged.pop("task", None) or "tagger"
    for key in ("train", "dev", "output", "vocab", "format"):
        merged.pop(key, None)
    summary, report = run_train(train_file, output=output, task=task, dev=dev, vocab=vocab_file, format=fmt,
                                resume=resume, threads=settings.threads, skip_invalid=skip_invalid,
                                progress=False if settings.quiet else None, **merged)
    _print_json(summary)
    _finish(settings, report)


@cli.command()
@model_option
@inputs_argument
@format_option
@click.option("--output-format", type=click.Choice(["jsonl", "conll"]), default="jsonl", show_default=True,
              help="conll: token gold predicted per line, for conlleval-style tools.")
@batch_option
@skip_invalid_option
@dask_option
@outdir_option
@click.pass_obj
def tag(settings, model, input, fmt, output_format, batch_size, skip_invalid, dask, output):
    """Add a model's predictions to every record: tags and entities, or label and probs.

    Records stream through in order, batch by batch. A gold tags or label in
    the input is kept as gold_tags or gold_label (seqtool eval --pred scores it).

    \b
    seqtool tag -m models/ner < new.jsonl > tagged.jsonl
    seqtool tag -m models/ner --dask local:4 'data/*.jsonl' -o tagged/
    """
    opts = {"format": fmt, "output_format": output_format, "batch_size": batch_size, "threads": settings.threads,
            "skip_invalid": skip_invalid, "progress": False if settings.quiet else None}
    stage = stage_function("tag", dask)
    if dask:
        opts.update(dask=dask, output=output)
    _finish(settings, stage(model, _inputs(input, dask, output), _stdout(), **opts))


@cli.command(name="eval")
@click.option("-m", "--model", metavar="DIR", help="Tag INPUT with this model and score it.")
@click.option("--pred", is_flag=True, help="INPUT is already tagged (seqtool tag or dedupe output): score it.")
@inputs_argument
@format_option
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
@model_option
@inputs_argument
@format_option
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


@cli.command(name="run")
@click.argument("pipeline", metavar="PIPELINE.yaml")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE", help="Override a variable of the file's vars.")
@click.option("--dry-run", is_flag=True, help="Check the file and print what would run (stdout); run nothing.")
@click.option("--force", is_flag=True, help="Run every selected step, even when unchanged since its last run.")
@click.option("--from", "from_step", metavar="STEP", help="Run STEP and the steps after it only.")
@click.option("--only", multiple=True, metavar="STEP", help="Run STEP only (repeatable).")
@click.option("--wait", is_flag=True, help="If another run of the pipeline holds its lock, wait instead of exit 3.")
@click.pass_obj
def run(settings, pipeline, sets, dry_run, force, from_step, only, wait):
    """Run the steps of a YAML pipeline: vocab, pad, train, tag, eval, dedupe, promote.

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
