"""The ``seqtool`` command line: thin click commands over plain functions.

Every command parses options, opens streams and calls one function that the
YAML runner calls too. Heavy modules (numpy, numba) are imported inside the
commands so that ``seqtool --help`` stays fast.
"""
import os
import sys

import click

from seqtool import __version__
from seqtool.errors import EXIT_INTERRUPTED, EXIT_OK, SeqtoolError
from seqtool.readers import FORMATS


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
    return click.get_binary_stream("stdout")


def _finish(settings: Settings, report) -> None:
    """Print a stage's Report on stderr: warnings always, the summary unless -q."""
    name = click.get_current_context().info_name
    lines = report.warnings if settings.quiet else [*report.warnings, report.summary]
    for line in lines:
        click.echo(f"seqtool {name}: {line}", err=True)


input_argument = click.argument("input", default="-", metavar="[INPUT]")
skip_invalid_option = click.option(
    "--skip-invalid", is_flag=True,
    help="Skip records that break the contract (their count goes to stderr) instead of stopping.")


@cli.command()
@input_argument
@click.option("-o", "--output", metavar="FILE", help="Build a vocabulary and save it to FILE (vocab.json).")
@click.option("--vocab", "vocab_file", metavar="FILE", help="Apply the vocabulary saved in FILE instead (streams).")
@click.option("--format", "fmt", type=click.Choice(FORMATS),
              help="Input format [default: from the extension; jsonl for stdin].")
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
    from seqtool.stages import run_vocab

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
    from seqtool.stages import run_pad

    _finish(settings, run_pad(input, _stdout(), batch_size=batch_size, bucket=bucket, length=length,
                              skip_invalid=skip_invalid, progress=False if settings.quiet else None))


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
    sys.exit(code if isinstance(code, int) else EXIT_OK)
