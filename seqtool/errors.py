"""Errors that reach the user as one line, and the exit codes they map to.

Library code raises these; only the CLI boundary (cli.py) prints them, as
``seqtool <cmd>: <file>:<line>: <message>``, and exits with the code below.
"""

EXIT_OK = 0
EXIT_DATA = 1          # bad input data (malformed line, unknown tag, empty file, ...)
EXIT_USAGE = 2         # bad options or arguments (click uses 2 for these too)
EXIT_LOCKED = 3        # another run holds the pipeline lock
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), after saving what can be saved


class SeqtoolError(Exception):
    """An error with an optional location; ``str()`` is the one-line message."""

    exit_code = EXIT_DATA

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.line}: " if self.line is not None else f"{self.path}: "
        return where + self.message


class DataError(SeqtoolError):
    """The input data is wrong: fix the file."""

    exit_code = EXIT_DATA


class UsageError(SeqtoolError):
    """The command line or configuration is wrong: fix the call."""

    exit_code = EXIT_USAGE


class LockedError(SeqtoolError):
    """Another process holds the lock."""

    exit_code = EXIT_LOCKED
