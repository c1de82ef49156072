"""Option decorators shared by the commands that read records: how to read an input.

``read_options`` adds --format, --encoding, --columns, --header/--no-header and
--quotes/--no-quotes to a command and hands the command one ``fmt`` argument: the
format name as before, or a ``readers.Reading`` when any of the others was given.
The pipeline runner packs a step's keys the same way (``Reading.from_options``).
"""
import functools

import click

from seqtool.data.readers import FORMATS, Reading

_OPTIONS = (
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

    for option in reversed(_OPTIONS):
        packed = option(packed)
    return packed
