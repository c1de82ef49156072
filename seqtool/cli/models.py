"""Commands about models: train, info, report."""
import click

from seqtool.cli.app import cli, finish, print_json
from seqtool.cli.options import batch_option, common_options, read_options, skip_invalid_option, train_option
from seqtool.errors import UsageError
from seqtool.kernels import CELL_GATES
from seqtool.model.defaults import TASKS


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
@train_option("--embeddings", metavar="FILE", help="Pretrained word vectors, a GloVe/word2vec text file (.gz ok): "
              "they initialise the table and their words join the vocabulary.")
@train_option("--vectors-limit", type=click.IntRange(0), help="--embeddings: only the file's first N words join the "
              "vocabulary (0: none, only training words get vectors).")
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
    print_json(summary)
    finish(settings, report)


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
        print_json(described)
    else:
        click.echo("\n".join(info_lines(described)))


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
    finish(settings, result)
