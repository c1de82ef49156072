"""The ``--dask`` twins of tag, eval and dedupe (run.py, over cluster.py, parts.py, tasks.py, dedupe.py).

``stage_function`` is the one place that chooses between a stage run in this
process and its twin on a Dask cluster: the CLI and the pipeline runner both
ask it. Nothing here imports dask; run.py does, when a cluster is used.
"""
import importlib

from seqtool.errors import UsageError

DASK_VERBS = ("tag", "eval", "dedupe")


def stage_function(verb: str, dask: str | None = None):
    """``run_<verb>``: of ``seqtool.stages.<verb>``, or of ``seqtool.distributed.run`` when ``dask``
    names a cluster (the caller then passes ``dask=`` on to it)."""
    if not dask:
        return getattr(importlib.import_module(f"seqtool.stages.{verb}"), f"run_{verb}")
    if verb not in DASK_VERBS:
        raise UsageError(f"--dask is for {', '.join(DASK_VERBS)}, not {verb}")
    return getattr(importlib.import_module("seqtool.distributed.run"), f"run_{verb}")
