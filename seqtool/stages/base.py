"""What every stage shares: the Report it returns, its progress bar and its warnings.

The stages (one module per verb, beside this one) are plain functions that the CLI, the YAML
runner and the Python API all call. Each reads its input through a ``data.readers.Source``, writes records to a
binary stream (stdout by default) and returns a ``Report``: a summary line and
warnings for stderr. Errors are raised as SeqtoolError for the caller to print.
Keyword names are the command-line option names.
"""
import sys
from dataclasses import dataclass, field
from typing import Iterable


@dataclass
class Report:
    """What a stage has to say on stderr: the summary (silenced by -q) and warnings (always shown)."""

    summary: str
    warnings: list[str] = field(default_factory=list)


def progress_bar(records: Iterable, enabled: bool | None, desc: str) -> Iterable:
    """``records`` with a tqdm bar on stderr: when ``enabled``, or (None) when stderr is a terminal."""
    if enabled is False or (enabled is None and not sys.stderr.isatty()):
        return records  # without importing tqdm (40 ms) in the usual piped case
    from tqdm import tqdm

    return tqdm(records, desc=desc, unit=" records", file=sys.stderr, leave=False)


def source_warnings(src, *more: str | None) -> list[str]:
    return [w for w in (src.reject.warning(), *more) if w]
