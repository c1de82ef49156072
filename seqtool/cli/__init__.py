"""The ``seqtool`` command line: thin click commands over plain functions.

    app.py          the group, error handling, main()
    options.py      options several commands share (-q/-v/--threads, reading options, --dask, ...)
    records.py      vocab, pad, convert, inspect
    models.py       train, info, report
    predictions.py  tag, eval, dedupe
    pipelines.py    run

Every command parses options, opens streams and calls one function that the YAML runner
and the Python API call too. Heavy modules (numpy, numba) are imported inside the commands
so that ``seqtool --help`` stays fast.
"""
import os

# Kernel threads are numba's; OpenBLAS's own pool (numpy's matmuls) would spin on the same cores and stall
# numba's parallel regions (measured: a training step 31 ms with one BLAS thread, 240+ ms without). Set before
# numpy loads; a user's explicit setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from seqtool.cli.app import cli, main  # noqa: E402
from seqtool.cli import models, pipelines, predictions, records  # noqa: E402,F401  (they register the commands)

__all__ = ["cli", "main"]
