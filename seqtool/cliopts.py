"""Option decorators the commands share.

The options every command takes before or after its name: ``-q``, ``-v`` and ``--threads``.

``seqtool -q tag ...`` and ``seqtool tag ... -q`` mean the same: the group's options
fill a ``Settings`` object, and ``common_options`` gives every command the same three
options, merged into that object (a count adds up, a flag or value given after the
command wins). It also runs the command under ``-v``: the resolved options first,
then whatever the library logs (seqtool/verbose.py), then the kernels' status and
the total time, all on stderr.

``read_options`` adds --format, --encoding, --columns, --header/--no-header and
--quotes/--no-quotes to a command that reads records and hands the command one ``fmt``
argument: the format name, or a ``readers.Reading`` when any of the others was given.
The pipeline runner packs a step's keys the same way (``Reading.from_options``).
"""
import functools
import os
import time

import click

from seqtool import verbose
from seqtool.data.readers import FORMATS, Reading


class Settings:
    """Options of the ``seqtool`` group, shared by every command."""

    def __init__(self, verbose: int = 0, quiet: bool = False, threads: int | None = None):
        self.verbose = verbose
        self.quiet = quiet
        self.threads = threads


def _merge(ctx: click.Context, param: click.Parameter, value) -> None:
    settings = ctx.ensure_object(Settings)
    if param.name == "verbose":
        settings.verbose += value
    elif param.name == "quiet":
        settings.quiet = settings.quiet or value
    elif value is not None:
        settings.threads = value


VERBOSE_HELP = "More detail on stderr: options, timings per phase, kernel threads and compile/cache status."
QUIET_HELP = "No progress or summaries on stderr (errors and warnings still shown)."
THREADS_HELP = "Worker threads for the numeric kernels (default: all cores)."
_OPTIONS = (
    click.option("-v", "--verbose", count=True, expose_value=False, callback=_merge, help=VERBOSE_HELP),
    click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_merge, help=QUIET_HELP),
    click.option("--threads", type=click.IntRange(1, None), expose_value=False, callback=_merge, help=THREADS_HELP),
)


def common_options(command):
    """Decorate a click command function (under ``@cli.command()``) with -v, -q and --threads."""
    @functools.wraps(command)
    def run(*args, **kwargs):
        ctx = click.get_current_context()
        settings = ctx.ensure_object(Settings)
        verbose.enable(settings.verbose, f"seqtool {ctx.info_name}: ")
        if verbose.enabled():
            _log_start(settings, kwargs)
        start = time.perf_counter()
        try:
            return command(*args, **kwargs)
        finally:
            if verbose.enabled():
                verbose.log.info(verbose.kernel_status())
                verbose.log.info("total: %.2f s", time.perf_counter() - start)
            verbose.enable(0)           # a later in-process call (the API, a test) starts quiet again

    for option in reversed(_OPTIONS):
        run = option(run)
    return run


def _log_start(settings: Settings, options: dict) -> None:
    given = ", ".join(f"{k}={v!r}" for k, v in options.items() if v not in (None, (), False))
    verbose.log.info("options: %s", given or "(defaults)")
    threads = f"--threads {settings.threads}" if settings.threads else "all cores (numba's default)"
    verbose.log.info("threads: %s; %s cores; quiet=%s", threads, os.cpu_count(), settings.quiet)


# Shell completion (click's: eval "$(_SEQTOOL_COMPLETE=bash_source seqtool)"): an argument that is a
# path completes as one. Plain string arguments would complete to nothing at all.
def complete_files(ctx, param, incomplete):
    from click.shell_completion import CompletionItem

    return [CompletionItem(incomplete, type="file")]


def complete_dirs(ctx, param, incomplete):
    from click.shell_completion import CompletionItem

    return [CompletionItem(incomplete, type="dir")]


# ---------------------------------------------------------------- how to read an input

_READ_OPTIONS = (
    click.option("--format", "fmt", type=click.Choice(FORMATS),
                 help="Input format [default: from the extension, under .gz/.bz2/.xz/.zip; jsonl for stdin]."),
    click.option("--encoding", metavar="NAME",
                 help="Input text encoding, e.g. cp1252, latin-1, utf-16 [default: utf-8; utf-16 by its BOM]."),
    click.option("--columns", metavar="KEY=COL,...",
                 help="csv/tsv: columns for record keys, by header name or number from 1 "
                      "(tokens=Word,tags=Tag,sentence='Sentence #'; text=question1,label=...) "
                      "[default: well-known header names].",),
    click.option("--header/--no-header", default=True,
                 help="csv/tsv: the first row names the columns [header]; without one, --columns uses numbers."),
    click.option("--quotes/--no-quotes", default=True,
                 help="csv/tsv: double quotes enclose fields [quotes]; --no-quotes reads them as text."),
)


def read_options(command):
    """The reading options on ``command``, packed into its ``fmt`` argument."""

    @functools.wraps(command)
    def packed(*args, **kwargs):
        opts = {"format": kwargs.pop("fmt"), **{k: kwargs.pop(k) for k in ("encoding", "columns", "header", "quotes")}}
        kwargs["fmt"] = Reading.from_options(opts)
        return command(*args, **kwargs)

    for option in reversed(_READ_OPTIONS):
        packed = option(packed)
    return packed
