"""Linking a pipeline's steps: ``{from: STEP}`` references, where each stdout goes, what must exist.

After this, every step knows the files it reads (``inputs``) and writes
(``outputs``), and where its stdout goes (``sink``):

- pad, tag, dedupe, eval: their ``output`` file; vocab, train and report: their ``stdout`` file
  (their ``output`` is the vocabulary file / the model directory / the page, as on the command line);
- a step whose records a later step reads ``from:`` it, without such a file, writes them to
  ``STATE_DIR/NAME.STEP.jsonl``: kept, so that an unchanged step can be skipped next time
  while the steps after it still find its output;
- otherwise nowhere (vocab's records, train's and eval's JSON summaries: the summaries
  still go to the run log); pad, tag and dedupe exist for their records, so there it is an error.
"""
import os
from difflib import get_close_matches

from seqtool.errors import UsageError
from seqtool.pipeline.spec import MAKERS, OWN_OUTPUT, READS, Pipeline, Ref, Step, parse_pipeline


def read_pipeline(path: str, sets=(), select=None, environ=None) -> Pipeline:
    """The checked pipeline at ``path``: its steps (spec.parse_pipeline) and their links.

    ``select(names)``: the names of the steps this run runs (None: all), so that an
    input another step makes only counts as present when that step runs first.
    """
    pipeline = parse_pipeline(path, sets, select, environ)
    link(pipeline, path, pipeline.selected)
    return pipeline


def link(pipeline: Pipeline, path: str, selected=None) -> None:
    """Resolve references and fill sink/inputs/outputs; UsageError (with the line) on the first problem.

    ``selected``: the names of the steps this run will run (None: all); a file another
    step makes only counts as present when that step runs before.
    """
    for step in pipeline.steps:
        step.sink = step.options.get("stdout" if step.stage in OWN_OUTPUT else "output")
    seen: dict = {}
    for step in pipeline.steps:
        _required(step, path)
        for key, value in list(step.options.items()):
            if isinstance(value, Ref):
                step.options[key] = _product(pipeline, step, key, value, seen, path)
        seen[step.name] = step
    for step in pipeline.steps:
        if step.sink is None and step.stage in ("pad", "tag", "dedupe"):
            raise UsageError(f"step {step.name}: its records go nowhere: give output: FILE, or read them "
                             f"in a later step with from: {step.name}", path, step.line)
        step.inputs = {k: step.options[k] for k in (*READS, "to") if k in step.options
                       and (k != "to" or step.stage == "promote")}
        if step.stage == "report":      # its eval files (a list) and the run log count as what it reads
            step.inputs.update({f"eval.{i}": p for i, p in enumerate(step.options.get("eval", []))})
            step.inputs.update({"runs": step.options["runs"]} if "runs" in step.options else {})
        step.outputs = [p for p in _outputs(step) if p]
    _check_files(pipeline, path, selected)


def _product(pipeline: Pipeline, step: Step, key: str, ref: Ref, seen: dict, path: str) -> str:
    """The path that ``{from: ref.step}`` stands for in ``step``'s ``key``."""
    line = step.lines[key]
    if ref.step not in seen:
        later = any(s.name == ref.step for s in pipeline.steps)
        if ref.step == step.name:
            why = "a step cannot read its own output"
        elif later:
            why = f"step {ref.step} comes later: a step reads from the steps before it"
        else:
            hint = get_close_matches(ref.step, list(seen), 1)
            why = f"no step named {ref.step!r} before this one" + (f" (did you mean {hint[0]!r}?)" if hint else "")
        raise UsageError(f"step {step.name}: {_from(step, key)}: {why}", path, line)
    maker = seen[ref.step]
    wanted = READS[key]
    if maker.stage not in MAKERS[wanted] or (wanted == "vocab" and "output" not in maker.options):
        noun, makers = _NOUNS[wanted]
        raise UsageError(f"step {step.name}: {_from(step, key)}: {ref.step} is a {maker.stage} step, which makes no "
                         f"{noun} ({noun} come from {makers})", path, line)
    if wanted == "records":
        if maker.sink is None:
            maker.sink = pipeline.file(f"{maker.name}.jsonl")
        return maker.sink
    return maker.options["to" if maker.stage == "promote" else "output"]


_NOUNS = {"records": ("records", "vocab, pad, tag and dedupe steps"),
          "model": ("model", "train and promote steps"),
          "vocab": ("vocabulary", "vocab steps with output:")}


def _required(step: Step, path: str) -> None:
    opts = step.options

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise UsageError(f"step {step.name}: {message}", path, step.line)

    if step.stage == "promote":
        for key, what in (("model", "DIR (or {from: STEP}): the new model"), ("to", "DIR: the promoted model"),
                          ("metric", "NAME: the best_dev metric to compare, e.g. f1")):
            need(key in opts, f"give {key}: {what}")
        return
    key = "train" if step.stage == "train" else "input"
    if step.stage != "report":
        need(key in opts, "no input: give input: FILE or from: STEP")
    if step.stage == "vocab":
        need(("output" in opts) != ("vocab" in opts),
             "give output: FILE to build a vocabulary, or vocab: FILE to apply a saved one (one of them)")
    elif step.stage == "train":
        need("output" in opts, "give output: DIR (the model directory)")
    elif step.stage == "eval":
        need(("model" in opts) != bool(opts.get("pred")),
             "give model: DIR to tag and score, or pred: true for records already tagged (one of them)")
    elif step.stage in ("tag", "dedupe"):
        need("model" in opts, "give model: DIR (or {from: STEP})")
    elif step.stage == "report":
        need(("model" in opts) != ("runs" in opts), "give model: DIR for a model's report, or runs: LOG for the "
             "pipeline's runs (one of them)")
        need("output" in opts, "give output: FILE (the HTML page)")
        return


def _outputs(step: Step) -> list:
    if step.stage == "promote":
        return [step.options["to"]]
    made = [step.sink]
    if step.stage in OWN_OUTPUT:
        made += [step.options.get("output"), step.options.get("png")]
    return made


def _check_files(pipeline: Pipeline, path: str, selected) -> None:
    """Inputs exist (or an earlier step that runs makes them); no two steps write one file."""
    made, writers = set(), {}
    for step in pipeline.steps:
        for key, p in step.inputs.items():
            # a run log is written by the run itself, so it may not exist yet when the file is checked
            if os.path.abspath(p) not in made and not (key == "to" and step.stage == "promote") and key != "runs":
                _exists(pipeline, step, key, p, path)
        reads = {os.path.abspath(p) for p in step.inputs.values()}
        for p in step.outputs:
            ap = os.path.abspath(p)
            if ap in reads and step.stage != "promote":
                raise UsageError(f"step {step.name}: writes {p}, which it also reads", path, step.line)
            if ap in writers:
                raise UsageError(f"step {step.name}: writes {p}, which step {writers[ap]} writes too", path,
                                 step.line)
            writers[ap] = step.name
            if selected is None or step.name in selected:
                made.add(ap)


def _exists(pipeline: Pipeline, step: Step, key: str, p: str, path: str) -> None:
    line = step.lines[key.split(".")[0]]       # eval.1: the line of eval
    if not os.path.exists(p):
        ap = os.path.abspath(p)
        maker = next((s.name for s in pipeline.steps if ap in map(os.path.abspath, s.outputs)), None)
        why = f" (step {maker} makes it, but does not run before this step)" if maker else _data_hint(path)
        raise UsageError(f"step {step.name}: {step.shown(key)}: no such {_kind(key)}: {p}{why}", path, line)
    if key == "model" and not os.path.isdir(p):
        raise UsageError(f"step {step.name}: model: not a model directory: {p}", path, line)


def _from(step: Step, key: str) -> str:
    """Where a ``from:`` was written: ``input: from`` (``input: {from: STEP}``), or ``from`` (the step's own)."""
    shown = step.shown(key)
    return "from" if shown == "from" else f"{shown}: from"


def _data_hint(path: str) -> str:
    """For a pipeline that finds its corpora through ``${env.SEQTOOL_DATA...}`` (a copy taken out of the
    repository no longer has ``../shared/data`` beside it): how to point it at them."""
    try:
        with open(path, encoding="utf-8") as f:
            uses_it = "env.SEQTOOL_DATA" in f.read()
    except OSError:
        return ""
    if not uses_it:
        return ""
    now = f" (now {os.environ['SEQTOOL_DATA']})" if os.environ.get("SEQTOOL_DATA") else " (not set)"
    return (f"; this pipeline reads its corpora from $SEQTOOL_DATA{now}, else ../shared/data beside the "
            "repository: set SEQTOOL_DATA=/path/to/data")


def _kind(key: str) -> str:
    return "model directory" if key == "model" else "file"
