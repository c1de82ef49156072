"""Running one pipeline step: the same stage functions the CLI calls, in this process.

A step's stdout goes to its sink file through a hidden temporary sibling that
replaces the sink only when the stage succeeds, so a failed or killed step never
leaves half a file where the next step (or the next run) would read it. The
``promote`` step copies a model directory over the promoted one with
modelio.save_model: the atomic directory swap, the old model kept as ``.prev``.
"""
import json
import os
import shlex
from contextlib import contextmanager
from dataclasses import dataclass, field

import click

from seqtool.model.atomicdir import process_alive
from seqtool.errors import DataError
from seqtool.data.jsonl import replacing
from seqtool.distributed import stage_function
from seqtool.data.readers import Reading
from seqtool.pipeline.spec import OWN_OUTPUT, Step, stage_params
from seqtool.wording import plural


@dataclass
class Outcome:
    status: str                               # ok, promoted, kept
    summary: str = ""
    warnings: list = field(default_factory=list)
    metrics: dict | None = None


def execute(step: Step, quiet: bool = False, threads: int | None = None) -> Outcome:
    """Run ``step``; stage errors propagate as they are (SeqtoolError, KeyboardInterrupt)."""
    for p in step.outputs:
        os.makedirs(os.path.dirname(os.path.abspath(p)), exist_ok=True)
    if step.stage == "promote":
        return promote(step.options)
    sink_key = "stdout" if step.stage in OWN_OUTPUT else "output"   # runner keys, not stage options
    opts = {k: v for k, v in step.options.items() if k != sink_key}
    if "format" in stage_params(step.stage):
        opts["format"] = Reading.from_options(opts)   # format, encoding, columns, header, quotes: one option
    progress = False if quiet else None
    with _sink(step.sink) as out:
        return _STAGES[step.stage](opts, out, progress, threads)


def _vocab(opts, out, progress, threads) -> Outcome:
    from seqtool.stages.vocab import run_vocab

    return _outcome(run_vocab(opts.pop("input"), out, progress=progress, **opts))


def _pad(opts, out, progress, threads) -> Outcome:
    from seqtool.stages.pad import run_pad

    return _outcome(run_pad(opts.pop("input"), out, progress=progress, **opts))


def _train(opts, out, progress, threads) -> Outcome:
    from seqtool.stages.train import run_train

    task = opts.pop("task", None)                   # None: inferred from the first record, as on the command line
    summary, report = run_train(opts.pop("train"), task=task, threads=threads, progress=progress, **opts)
    out.write((json.dumps(summary, default=float) + "\n").encode())
    metrics = {k: summary.get(k) for k in ("dev", "epochs", "best_epoch", "stopped", "seconds")}
    return _outcome(report, metrics)


def _tag(opts, out, progress, threads) -> Outcome:
    run_tag = stage_function("tag", opts.get("dask"))
    return _outcome(run_tag(opts.pop("model"), opts.pop("input"), out, threads=threads, progress=progress,
                            **opts))


def _eval(opts, out, progress, threads) -> Outcome:
    run_eval = stage_function("eval", opts.get("dask"))
    if opts.get("dask"):
        opts["progress"] = progress
    result, report = run_eval(opts.pop("input"), threads=threads, **opts)
    out.write((json.dumps(result, default=float) + "\n").encode())
    scores = [f"{k} {result[k]:.4f}" for k in SCORES if isinstance(result.get(k), float)]
    summary = f"{plural(result.get('records') or 0, 'record')}: {', '.join(scores) or 'nothing scored'}"
    return Outcome("ok", summary, list(report.warnings), result)


def _dedupe(opts, out, progress, threads) -> Outcome:
    run_dedupe = stage_function("dedupe", opts.get("dask"))
    return _outcome(run_dedupe(opts.pop("model"), opts.pop("input"), out, threads=threads, progress=progress,
                               **opts))


def _report(opts, out, progress, threads) -> Outcome:
    from seqtool.stages.report import run_report

    report = run_report(opts.pop("model", None), opts.pop("eval", []), threads=threads, **opts)
    out.write((report.path + "\n").encode())
    return _outcome(report, {"report": report.path})


SCORES = ("f1", "precision", "recall", "accuracy", "macro_f1", "auc")
_STAGES = {"vocab": _vocab, "pad": _pad, "train": _train, "tag": _tag, "eval": _eval, "dedupe": _dedupe, "report": _report}


def _outcome(report, metrics=None) -> Outcome:
    return Outcome("ok", report.summary, list(report.warnings), metrics)


@contextmanager
def _sink(path: str | None):
    """A binary stream for the stage's stdout: a temporary sibling of ``path``, renamed over it
    on success (``os.devnull`` when the output goes nowhere)."""
    if path is None:
        with open(os.devnull, "wb") as f:
            yield f
        return
    parent, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(parent, f".{name}.tmp-{os.getpid()}")
    clear_stale(parent, f".{name}.tmp-")
    with replacing(path, tmp) as f:
        yield f


def clear_stale(parent: str, prefix: str) -> None:
    """Remove ``prefix + PID`` files of processes that are gone (what a kill -9 left behind)."""
    for entry in os.listdir(parent):
        pid = entry[len(prefix):]
        if entry.startswith(prefix) and pid.isdigit() and not process_alive(int(pid)):
            try:
                os.unlink(os.path.join(parent, entry))
            except OSError:
                pass


# ---------------------------------------------------------------- promote

def promote(opts: dict) -> Outcome:
    """Put the model ``opts['model']`` at ``opts['to']`` if its ``metric`` beats the current one's by more
    than ``min_delta`` (or nothing is there yet); otherwise leave ``to`` alone.

    The scores compared are each model's best_dev (metrics.json: the dev set of its own training run), or,
    with ``dev``, both models scored now on that one file: what a cron job wants when the dev set changes
    between trainings."""
    from seqtool.model.modelio import load_model, save_model

    new_dir, to, metric = opts["model"], opts["to"], opts["metric"]
    delta = opts.get("min_delta", 0.0)
    config, weights, vocab, metrics = load_model(new_dir)

    def score(path: str, stored: dict) -> float:
        return dev_score(path, metric, opts["dev"]) if "dev" in opts else best_dev(stored, metric, path)

    new = score(new_dir, metrics)
    current = score(to, load_model(to)[3]) if os.path.lexists(to) else None
    facts = {"metric": metric, "new": new, "current": current, "min_delta": delta, "model": new_dir, "to": to}
    if "dev" in opts:
        facts["dev"] = opts["dev"]
    if current is not None and not new - delta > current:
        return Outcome("kept", f"kept {to}: {metric} {new:.4f} of {new_dir} does not beat {current:.4f} by more "
                               f"than {delta:g}", metrics=facts)
    save_model(to, config, weights, vocab, metrics, keep_previous=opts.get("keep_previous", True))
    was = f"{current:.4f}" if current is not None else "no model before"
    return Outcome("promoted", f"promoted {new_dir} to {to}: {metric} {new:.4f} (was {was})", metrics=facts)


def dev_score(path: str, metric: str, dev: str) -> float:
    """The model at ``path`` scored on the labelled records ``dev`` (seqtool eval): its ``metric``."""
    from seqtool.stages.eval import run_eval

    result, _ = run_eval(dev, model=path)
    value = result.get(metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        have = ", ".join(k for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        raise DataError(f"seqtool eval gives no {metric!r} score for this model (it gives: {have})", path)
    return float(value)


def best_dev(metrics: dict, metric: str, path: str) -> float:
    """The model's ``best_dev[metric]`` from its metrics.json, as a number."""
    where = os.path.join(path, "metrics.json")
    dev = metrics.get("best_dev") if isinstance(metrics, dict) else None
    if not dev:
        raise DataError("no best_dev scores: the model was trained without --dev, so it cannot be compared", where)
    value = dev.get(metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        have = ", ".join(k for k, v in dev.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        raise DataError(f"best_dev has no {metric!r} score (it has: {have})", where)
    return float(value)


# ---------------------------------------------------------------- the equivalent command line

def command_line(step: Step) -> str:
    """The shell command that does what ``step`` does (for --dry-run and the docs)."""
    o = step.options
    if step.stage == "promote":
        scores = f"{o['metric']} on {shlex.quote(o['dev'])}" if "dev" in o else f"best_dev {o['metric']}"
        return (f"promote {shlex.quote(o['model'])} to {shlex.quote(o['to'])} if its {scores} beats "
                f"the current one's by more than {o.get('min_delta', 0.0):g}")
    params = stage_params(step.stage)
    words, positional = ["seqtool", "eval" if step.stage == "eval" else step.stage], []
    for key, value in o.items():
        if key == "stdout" or (key == "output" and step.stage not in OWN_OUTPUT):
            continue
        param = params[key]
        if isinstance(param, click.Argument):
            positional.append(value)
        elif getattr(param, "multiple", False):
            words += [w for v in value for w in (param.opts[-1], str(v))]
        elif param.is_flag:
            flag = param.opts[-1] if value else (param.secondary_opts or [None])[0]
            words += [flag] if flag else []
        else:
            words += [next(x for x in param.opts if x.startswith("--")), str(value)]
    line = " ".join(shlex.quote(w) for w in words + positional)
    return line + (f" > {shlex.quote(step.sink)}" if step.sink else "")
