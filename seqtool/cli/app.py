"""The ``seqtool`` group, its error handling and ``main``: what every command runs inside.

A SeqtoolError raised by a stage becomes ``seqtool COMMAND: file:line: message`` and its
exit code here, once, for every command (and for click's test runner as for a user).
"""
import gc
import os
import sys

import click

from seqtool import __version__
from seqtool.cli.options import QUIET_HELP, THREADS_HELP, VERBOSE_HELP, Settings
from seqtool.errors import EXIT_INTERRUPTED, EXIT_OK, SeqtoolError


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


def stdout():
    return sys.stdout.buffer   # (click's get_binary_stream is deprecated in click 8.5; CliRunner swaps sys.stdout)


def finish(settings: Settings, report) -> None:
    """Print a stage's Report on stderr: warnings always, the summary unless -q."""
    name = click.get_current_context().info_name
    lines = report.warnings if settings.quiet else [*report.warnings, report.summary]
    for line in lines:
        click.echo(f"seqtool {name}: {line}", err=True)


def print_json(obj) -> None:
    import json

    click.echo(json.dumps(obj, default=float))


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
