"""``seqtool run``: a YAML pipeline of seqtool stages, run in one process, safe to run from cron.

A run: read and check the whole file (exit 2 on the first problem, nothing
run); take the pipeline's lock (exit 3 if another run holds it, or wait with
``--wait``); then each selected step in order is skipped when unchanged since
its last success, or run. The first failing step stops the run with its
error's exit code (1 data, 2 usage, 130 interrupted); the run log records every
step. Ctrl-C and SIGTERM stop the running stage the way Ctrl-C stops the
command (train saves a checkpoint) and exit 130.
"""
import os
import signal
import sys
import time
from collections import Counter
from contextlib import contextmanager

import click

from seqtool.errors import EXIT_INTERRUPTED, EXIT_USAGE, LockedError, SeqtoolError, UsageError
from seqtool.pipeline.closing import closing_lines
from seqtool.pipeline.links import read_pipeline
from seqtool.pipeline.spec import Pipeline
from seqtool.pipeline.state import RunLog, State, locked, step_key
from seqtool.pipeline.steps import command_line, execute
from seqtool.stages.base import Report


class StepFailed(SeqtoolError):
    """A step's error, named after the step; keeps the error's exit code."""

    def __init__(self, name: str, error, code: int):
        what = "interrupted" if code == EXIT_INTERRUPTED else "failed"
        super().__init__(f"step {name} {what}: {error}")
        self.exit_code = code


def run_pipeline(path: str, *, sets=(), dry_run: bool = False, force: bool = False, from_step: str | None = None,
                 only=(), wait: bool = False, quiet: bool = False, threads: int | None = None,
                 out=None, environ=None) -> Report:
    """Run (or with ``dry_run`` describe on ``out``) the pipeline at ``path``; the Report is for stderr."""
    pipeline = read_pipeline(path, sets, _selector(from_step, only), environ)
    if dry_run:
        return _dry_run(pipeline, force, out or sys.stdout)
    log = RunLog(pipeline.log)

    def waiting(pid):
        if not quiet:
            click.echo(f"seqtool run: waiting for the run with pid {pid} to finish", err=True)

    try:
        with locked(pipeline.file("lock"), wait, waiting):
            return _run(pipeline, log, force, quiet, threads, sets)
    except LockedError as e:
        log("run", status="locked", pipeline=os.path.abspath(path), error=e.message)
        raise


def _selector(from_step: str | None, only):
    """A function of the step names -> the names this run runs (None: all)."""
    if from_step and only:
        raise UsageError("give --from or --only, not both")

    def select(names: list) -> set | None:
        for option, name in [("--from", from_step)] * bool(from_step) + [("--only", n) for n in only]:
            if name not in names:
                raise UsageError(f"{option} {name}: no such step (steps: {', '.join(names)})")
        if from_step:
            return set(names[names.index(from_step):])
        return set(only) if only else None

    return select


def _runs(pipeline: Pipeline):
    return [s for s in pipeline.steps if pipeline.selected is None or s.name in pipeline.selected]


def _run(pipeline: Pipeline, log: RunLog, force: bool, quiet: bool, threads, sets) -> Report:
    state = State(pipeline.file("state.json"))
    log("run", status="started", pipeline=os.path.abspath(pipeline.path), sets=list(sets), force=force,
        steps=[s.name for s in _runs(pipeline)])
    t0 = time.monotonic()
    counts: Counter = Counter()
    current = None
    try:
        with _interrupts():
            for current in _runs(pipeline):
                counts[_step(current, state, log, force, quiet, threads)] += 1
    except (KeyboardInterrupt, StepFailed) as e:
        code = EXIT_INTERRUPTED if isinstance(e, KeyboardInterrupt) else e.exit_code
        name = current.name if current else "(none)"
        log("run", status="interrupted" if code == EXIT_INTERRUPTED else "failed", step=name, exit=code,
            seconds=_since(t0))
        if isinstance(e, KeyboardInterrupt):
            how = signal.Signals(_signals[-1]).name if _signals else "Ctrl-C"
            raise StepFailed(name, how, EXIT_INTERRUPTED) from None
        raise
    except Exception as e:
        log("run", status="failed", step=current.name if current else None, error=repr(e), seconds=_since(t0))
        raise
    seconds = _since(t0)
    log("run", status="ok", seconds=seconds, **{k: v for k, v in counts.items()})
    done = ", ".join(f"{n} {k}" for k, n in counts.items())
    closing = "".join(f"\n  {line}" for line in closing_lines(pipeline, _runs(pipeline)))
    return Report(f"{pipeline.stem}: {done} in {seconds:.1f}s (log: {pipeline.log}){closing}")


def _step(step, state: State, log: RunLog, force: bool, quiet: bool, threads) -> str:
    """Skip or run one step; its status ('skipped', 'ok', 'promoted', 'kept')."""
    key = step_key(step)
    if not force and state.unchanged(step, key):
        log("step", step=step.name, stage=step.stage, status="skipped")
        _say(quiet, f"{step.name}: skipped (unchanged since {state.steps[step.name].get('finished', '?')})")
        return "skipped"
    log("step", step=step.name, stage=step.stage, status="started",
        reason="--force" if force else state.why(step, key))
    t0 = time.monotonic()
    try:
        outcome = execute(step, quiet, threads)
    except KeyboardInterrupt:
        state.forget(step)
        log("step", step=step.name, stage=step.stage, status="interrupted", seconds=_since(t0))
        raise
    except (SeqtoolError, OSError) as e:
        code = e.exit_code if isinstance(e, SeqtoolError) else EXIT_USAGE
        status = "interrupted" if code == EXIT_INTERRUPTED else "failed"
        state.forget(step)
        log("step", step=step.name, stage=step.stage, status=status, seconds=_since(t0), exit=code, error=str(e))
        raise StepFailed(step.name, e, code) from None
    except Exception as e:
        state.forget(step)
        if not _signals:        # a bug: logged, then the traceback
            log("step", step=step.name, stage=step.stage, status="failed", seconds=_since(t0), error=repr(e))
            raise      # the interrupt came out of a kernel as another error (see _interrupts)
        log("step", step=step.name, stage=step.stage, status="interrupted", seconds=_since(t0), error=repr(e))
        raise KeyboardInterrupt from None
    seconds = _since(t0)
    if step.stage == "promote":   # it reads what it writes: the key to match next time is the one after
        key = step_key(step)
    state.record(step, key, finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), seconds=seconds)
    log("step", step=step.name, stage=step.stage, status=outcome.status, seconds=seconds,
        summary=outcome.summary, metrics=outcome.metrics)
    for warning in outcome.warnings:
        click.echo(f"seqtool run: {step.name}: {warning}", err=True)
    _say(quiet, f"{step.name}: {outcome.summary} ({seconds:.1f}s)")
    return outcome.status


def _say(quiet: bool, line: str) -> None:
    if not quiet:
        click.echo(f"seqtool run: {line}", err=True)


def _since(t0: float) -> float:
    return round(time.monotonic() - t0, 3)


_signals: list = []   # the interrupting signals received during this run


@contextmanager
def _interrupts():
    """Ctrl-C and SIGTERM (cron's timeout, systemd, kill) both stop the run as Ctrl-C stops a command.

    Each is noted before KeyboardInterrupt is raised: a signal that lands inside a
    compiled kernel can come out of numba as another error (SystemError), which
    the step then still reports as interrupted (exit 130), not as a failure.
    """
    def handler(signum, frame):
        _signals.append(signum)
        raise KeyboardInterrupt

    _signals.clear()
    try:
        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:          # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _dry_run(pipeline: Pipeline, force: bool, out) -> Report:
    """One line per step on ``out``: whether it would run, and the command it amounts to."""
    state = State(pipeline.file("state.json"))
    changed: dict = {}          # output path -> the step that would rewrite it
    for step in pipeline.steps:
        if pipeline.selected is not None and step.name not in pipeline.selected:
            out.write(f"{step.name}: not selected\n")
            continue
        upstream = sorted({changed[os.path.abspath(p)] for p in step.inputs.values()
                           if os.path.abspath(p) in changed})
        if force:
            verdict = "run (--force)"
        elif upstream:
            verdict = f"run (after {', '.join(upstream)})"
        else:
            key = step_key(step)
            verdict = "skip (unchanged)" if state.unchanged(step, key) else f"run ({state.why(step, key)})"
        if verdict.startswith("run"):
            changed.update({os.path.abspath(p): step.name for p in step.outputs})
        out.write(f"{step.name}: {verdict}: {command_line(step)}\n")
    return Report(f"{pipeline.path}: valid; nothing was run (--dry-run)")
