"""The end of a pipeline run for a person: where its outputs went and one command to try next.

    outputs: work/quickstart/vocab.json (vocab), work/quickstart/model (train), work/quickstart/tagged.jsonl (tag)
    next:    seqtool tag -m work/quickstart/model --output-format inline sample_data/ner_dev.jsonl | head
"""
import json
import os
import shlex

from seqtool.pipeline.spec import Pipeline

MODEL_STEPS = ("train", "promote")


def closing_lines(pipeline: Pipeline, steps: list) -> list[str]:
    """``outputs:`` the files and directories the ``steps`` (those that ran) keep for the user, and
    ``next:`` a command over the newest model, when there is one."""
    wrote = [f"{_shown(p)} ({s.name})" for s in steps for p in _kept(pipeline, s)]
    lines = [f"outputs: {', '.join(wrote)}"] if wrote else []
    command = next_command(steps)
    if command:
        lines.append(f"next:    {command}")
    return lines


def next_command(steps: list) -> str | None:
    """Try the last model made: tag some of its dev records, readable (a tagger or classifier), or score
    it on them (a Siamese model)."""
    made = [s for s in steps if s.stage in MODEL_STEPS]
    if not made:
        return None
    step = made[-1]
    model = step.options["to" if step.stage == "promote" else "output"]
    task = _task(model)
    records = _records_for(steps)
    quoted = shlex.quote(_shown(model))
    if task in ("tagger", "classifier"):
        source = f"{shlex.quote(_shown(records))} | head" if records else '--text "a sentence of your own"'
        return f"seqtool tag -m {quoted} --output-format inline {source}"
    if task == "siamese" and records:
        return f"seqtool eval -m {quoted} {shlex.quote(_shown(records))}"
    return f"seqtool eval -m {quoted} DEV.jsonl" if task else None


def _kept(pipeline: Pipeline, step) -> list[str]:
    """What the step wrote that the user named (its output/to/stdout), not the runner's own files."""
    internal = os.path.abspath(pipeline.file(""))               # STATE_DIR/NAME. : intermediate streams
    return [p for p in dict.fromkeys(step.outputs) if p and not os.path.abspath(p).startswith(internal)]


def _records_for(steps: list) -> str | None:
    """A file of records to try a model on: a train step's dev, else a tag/eval/dedupe step's input."""
    for s in reversed(steps):
        dev = s.options.get("dev") if s.stage == "train" else None
        if isinstance(dev, str):
            return dev
    for s in reversed(steps):
        value = s.options.get("input") if s.stage in ("tag", "eval", "dedupe") else None
        if isinstance(value, str):
            return value
    return None


def _task(model: str) -> str | None:
    try:
        with open(os.path.join(model, "config.json"), encoding="utf-8") as f:
            return json.load(f).get("task")
    except (OSError, ValueError, AttributeError):
        return None


def _shown(path: str) -> str:
    """A path as short as it is clear: relative to the working directory when it lies below it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel
