"""The ``seqtool`` command line: thin click commands over plain functions.

Every command parses options, opens streams and calls one function that the
YAML runner calls too. Heavy modules (numpy, numba) are imported inside the
commands so that ``seqtool --help`` stays fast.
"""
import os
import sys

import click

from seqtool import __version__
from seqtool.errors import EXIT_DATA, EXIT_INTERRUPTED, SeqtoolError


class Settings:
    """Options of the ``seqtool`` group, shared by every command."""

    def __init__(self, verbose: int = 0, quiet: bool = False, threads: int | None = None):
        self.verbose = verbose
        self.quiet = quiet
        self.threads = threads


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="seqtool")
@click.option("-v", "--verbose", count=True, help="More detail on stderr.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or summaries on stderr (errors still shown).")
@click.option("--threads", type=click.IntRange(1, None), envvar="SEQTOOL_THREADS",
              help="Worker threads for the numeric kernels (default: all cores).")
@click.pass_context
def cli(ctx, verbose, quiet, threads):
    """Train and run sequence models on text, as JSON Lines stages.

    \b
    seqtool vocab -o vocab.json < train.jsonl | seqtool pad --batch-size 32
    """
    ctx.obj = Settings(verbose=verbose, quiet=quiet, threads=threads)


def main():
    """Entry point: runs the CLI and turns every known failure into one line and an exit code."""
    prog = "seqtool"
    try:
        cli.main(prog_name=prog, standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except SeqtoolError as e:
        name = _command_name()
        click.echo(f"{prog} {name}: {e}" if name else f"{prog}: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo(f"{prog}: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (``seqtool ... | head``): exit quietly. Point stdout at
        # devnull so the interpreter's final flush does not raise again (Python docs,
        # "Note on SIGPIPE").
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(EXIT_DATA)
    except UnicodeDecodeError as e:
        click.echo(f"{prog} {_command_name()}: input is not UTF-8: {e.reason}", err=True)
        sys.exit(EXIT_DATA)


def _command_name() -> str:
    """The subcommand being run, for error prefixes (``seqtool pad: ...``)."""
    for arg in sys.argv[1:]:
        if arg in cli.commands:
            return arg
    return ""
