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

from seqtool.data.formats import FORMATS
from seqtool.errors import UsageError
from seqtool.model.defaults import default_text


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
        from seqtool import verbose          # (logging: only once a command runs, never for --help)

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
    from seqtool import verbose

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
        from seqtool.data.readers import Reading

        kwargs["fmt"] = Reading.from_options(opts)
        return command(*args, **kwargs)

    for option in reversed(_READ_OPTIONS):
        packed = option(packed)
    return packed


# ---------------------------------------------------------------- arguments and options of several commands

input_argument = click.argument("input", default="-", metavar="[INPUT]", shell_complete=complete_files)
skip_invalid_option = click.option(
    "--skip-invalid", is_flag=True,
    help="Skip records that break the contract (their count goes to stderr) instead of stopping.")


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


def inputs_for(inputs: tuple, dask: str | None, output: str | None):
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
