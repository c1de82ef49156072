"""A pipeline file checked from end to end before anything runs.

``parse_pipeline(path, sets)`` loads the YAML (yamlfile.py), expands
``${...}``, and checks every step against the CLI's own options (the click
parameters of ``seqtool STAGE``: names, types, ranges, choices), so a YAML
step and a command line accept the same things. The first problem found is
raised as one UsageError ``file.yaml:LINE: message``; nothing has run.

File layout (flat, keys are CLI option names, ``-`` or ``_``):

    root: ..                 # relative paths resolve here (default: the file's directory)
    state_dir: work/ner      # state, lock, run log, intermediate streams (default: root)
    log: work/ner/runs.jsonl # the run log (default: STATE_DIR/NAME.log.jsonl)
    vars: {name: value}
    x-small: &small {embed: 8}   # top-level keys starting x- are ignored: a place for YAML anchors
    steps:
      STEP:                  # a name; the stage defaults to it
        stage: vocab|pad|train|tag|eval|dedupe|report|promote
        input: FILE          # or {from: STEP}, or from: STEP at the step's level
        ...options of seqtool STAGE...
"""
import functools
import os
import re
from dataclasses import dataclass, field
from difflib import get_close_matches

import click

from seqtool.errors import UsageError
from seqtool.pipeline.yamlfile import Interpolator, Mapping, load, scalar, show

STAGES = ("vocab", "pad", "train", "tag", "eval", "dedupe", "report", "promote")
OWN_OUTPUT = ("vocab", "train", "report")   # stages whose output (-o) is their own file: stdout goes to stdout:
TOP_KEYS = ("vars", "root", "state_dir", "log", "steps")
RECORD_STAGES = ("vocab", "pad", "tag", "dedupe")  # stages whose stdout is records another step can read
# What {from: STEP} stands for in each key, and the stages that make it.
READS = {"input": "records", "train": "records", "dev": "records", "model": "model", "vocab": "vocab"}
MAKERS = {"records": RECORD_STAGES, "model": ("train", "promote"), "vocab": ("vocab",)}
EMPTY_IS_NONE = ("embeddings",)   # an empty value (an unset variable's default) means "not given"
PATH_KEYS = ("input", "train", "dev", "model", "vocab", "embeddings", "output", "stdout", "to", "eval", "runs", "png")  # resolved against root
PROMOTE_KEYS = {"model": "path", "to": "path", "metric": "name", "min_delta": "delta", "keep_previous": "bool",
                "dev": "path"}
_STEP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Ref:
    """``{from: STEP}``: what STEP makes (its records, model or vocabulary)."""

    step: str


@dataclass
class Step:
    name: str
    stage: str
    line: int
    options: dict                      # option name -> value: typed, paths resolved, Refs linked
    lines: dict                        # option name -> its line in the file
    sink: str | None = None            # the file the stage's stdout goes to (None: nowhere)
    inputs: dict = field(default_factory=dict)   # option name -> path read (file or model directory)
    outputs: list = field(default_factory=list)  # paths written
    written: dict = field(default_factory=dict)  # option name -> the key as the YAML file spells it

    def shown(self, key: str) -> str:
        """``key`` as the user wrote it (``output-format``, ``input``), for messages; never the internal name."""
        return self.written.get(key, key.replace("_", "-"))


@dataclass
class Pipeline:
    path: str
    stem: str
    root: str
    state_dir: str
    log: str
    steps: list
    selected: set | None = None        # the steps this run runs (None: all)

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

    def file(self, suffix: str) -> str:
        """A file of this pipeline's in the state directory: NAME.state.json, NAME.lock, ..."""
        return os.path.join(self.state_dir, f"{self.stem}.{suffix}")


@functools.cache
def stage_params(stage: str) -> dict:
    """Option name -> click parameter of ``seqtool STAGE`` (the long name, ``-`` as ``_``)."""
    # The one import that points up, on purpose: a step's keys are the command's own options, so the
    # pipeline validates against the CLI's click parameters instead of keeping a second table.
    from seqtool.cli import cli

    params = {}
    for p in cli.commands[stage].params:
        if not p.expose_value:   # -q, -v, --threads (cli/options.py): settings of the whole run, not of a step
            continue
        longs = [o for o in p.opts if o.startswith("--")] or p.opts
        params[longs[0].lstrip("-").replace("-", "_")] = p
    params.pop("config", None)   # a pipeline step holds the options itself
    return params


def options_file(path: str, stage: str) -> dict:
    """The options of ``seqtool STAGE --config FILE``, by the command's parameter names.

    FILE holds ``option: value`` pairs checked as a pipeline step's are (the command's own option
    names, ``-`` or ``_``; types, ranges and choices): a key the command does not take is an error
    with its line, never ignored. Relative paths resolve against the file's directory, as in a pipeline.
    """
    doc = _underscored(load(path, "a config file holds option: value pairs"), path, "")
    params = stage_params(stage)
    out = {}
    for key, raw in doc.items():
        line = doc.line_of(key)
        if key not in params:
            hint = get_close_matches(key, list(params), 1)
            did = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise UsageError(f"unknown option {key!r} for seqtool {stage}{did}", path, line)
        kind = "path" if key in PATH_KEYS else params[key]
        try:
            value = _typed(raw, kind)
        except _Expected as e:
            raise UsageError(f"{key}: expected {e.what}, got {show(raw)}", path, line) from None
        if kind == "path" and value != "-":
            value = os.path.normpath(os.path.join(os.path.dirname(path), os.path.expanduser(value)))
        out[params[key].name] = value
    return out


def parse_sets(sets) -> dict:
    """``--set NAME=VALUE`` pairs -> {name: value read as a YAML scalar}."""
    out = {}
    for item in sets:
        name, eq, value = item.partition("=")
        name = name.strip().removeprefix("vars.")
        if not eq or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise UsageError(f"--set expects NAME=VALUE, got {item!r}")
        out[name] = scalar(value)
    return out


def parse_pipeline(path: str, sets=(), select=None, environ=None) -> Pipeline:
    """The pipeline at ``path``, each step checked on its own (``links.read_pipeline`` then links them).

    ``select(names)``: the names of the steps this run runs (None: all), so that an
    input another step makes only counts as present when that step runs first.
    """
    doc = _underscored(load(path), path, "", skip=lambda key: key.startswith("x-"))  # x-: YAML anchors only
    _known(doc, TOP_KEYS, path, "")
    variables = doc.get("vars", Mapping())
    if not isinstance(variables, Mapping):
        raise UsageError(f"vars: expected a mapping of names to values, got {show(variables)}", path,
                         doc.line_of("vars"))
    overrides = parse_sets(sets)
    for name in overrides:
        if name not in variables:
            raise UsageError(f"--set {name}: no such variable in vars (defined: {', '.join(variables) or 'none'})")
    env = Interpolator(variables, overrides, path, environ)
    for name in variables:
        value = env.var(name, variables.line_of(name))
        if not isinstance(value, (str, int, float, bool)):
            raise UsageError(f"vars: {name}: expected a string, number or true/false, got {show(value)}",
                             path, variables.line_of(name))
    return _Builder(path, doc, env).build(select)


def _underscored(mapping: Mapping, path: str, where: str, skip=lambda key: False) -> Mapping:
    """``mapping`` with ``-`` in its keys read as ``_`` (``batch-size`` is ``batch_size``)."""
    out = Mapping()
    out.line = mapping.line
    out.written = {}                   # normalised key -> as written
    for key, value in mapping.items():
        if skip(key):
            continue
        norm = key.replace("-", "_")
        if norm in out:
            raise UsageError(f"{where}{key!r} is given twice (first on line {out.lines[norm]})", path,
                             mapping.line_of(key))
        out[norm], out.lines[norm], out.written[norm] = value, mapping.line_of(key), key
    return out


def _known(mapping: Mapping, allowed, path: str, where: str) -> None:
    for key in mapping:
        if key not in allowed:
            hint = get_close_matches(key, allowed, 1)
            did = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise UsageError(f"{where}unknown key {key!r}{did}; expected one of: {', '.join(allowed)}",
                             path, mapping.line_of(key))


class _Builder:
    """Turns the loaded document into a Pipeline, checking as it goes."""

    def __init__(self, path: str, doc: Mapping, env: Interpolator):
        self.path, self.doc, self.env = path, doc, env
        base = os.path.dirname(path)
        self.root = os.path.normpath(self._top_path("root", base, base))
        self.state_dir = os.path.normpath(self._top_path("state_dir", self.root, self.root))
        self.stem = os.path.splitext(os.path.basename(path))[0]
        self.log = self._top_path("log", os.path.join(self.state_dir, self.stem + ".log.jsonl"), self.root)

    def _top_path(self, key: str, default: str, base: str) -> str:
        if key not in self.doc:
            return default
        value = self.env.expand(self.doc[key], self.doc.line_of(key))
        if not isinstance(value, str) or not value:
            raise UsageError(f"{key}: expected a path, got {show(value)}", self.path, self.doc.line_of(key))
        return os.path.normpath(os.path.join(base, os.path.expanduser(value)))

    def resolve(self, value: str) -> str:
        return os.path.normpath(os.path.join(self.root, os.path.expanduser(value)))

    def build(self, select) -> Pipeline:
        steps_doc = self.doc.get("steps")
        if not isinstance(steps_doc, Mapping) or not steps_doc:
            line = self.doc.line_of("steps") if "steps" in self.doc else self.doc.line
            raise UsageError("steps: expected a mapping of step names to their options", self.path, line)
        steps = [self._step(name, body, steps_doc.line_of(name)) for name, body in steps_doc.items()]
        pipeline = Pipeline(self.path, self.stem, self.root, self.state_dir, self.log, steps)
        pipeline.selected = select([s.name for s in steps]) if select else None
        return pipeline

    def _step(self, name: str, body, line: int) -> Step:
        if not _STEP_NAME.fullmatch(name):
            raise UsageError(f"step {name!r}: a step name is letters, digits, '_', '.' and '-'", self.path, line)
        if not isinstance(body, Mapping):
            raise UsageError(f"step {name}: expected a mapping of options, got {show(body)}", self.path, line)
        body = _underscored(body, self.path, f"step {name}: ")
        stage = self.env.expand(body.get("stage", name), body.line_of("stage"))
        if stage not in STAGES:
            if "stage" not in body:
                raise UsageError(f"step {name}: give stage: STAGE (one of: {', '.join(STAGES)}); a step's name is "
                                 "its stage only when it is one of them", self.path, line)
            hint = get_close_matches(str(stage), STAGES, 1)
            did = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise UsageError(f"step {name}: unknown stage {show(stage)}{did}; expected one of: {', '.join(STAGES)}",
                             self.path, body.line_of("stage"))
        step = Step(name, stage, line, {}, {}, written=dict(body.written))
        allowed = self._allowed(stage)
        self._check_keys(step, body, allowed)
        for key, raw in body.items():
            if key != "stage":
                step.lines[key] = body.line_of(key)
                step.options[key] = self._value(step, key, raw, allowed[key])
                if step.options[key] is None:       # an empty optional path: the option is not given
                    del step.options[key]
        self._shorthand(step)
        if stage == "train":
            self._train_options_apply(step)
        return step

    def _train_options_apply(self, step: Step) -> None:
        """A train step with a task refuses, before anything runs, an option that task never reads."""
        from seqtool.model.defaults import misapplied

        task = step.options.get("task")
        wrong = misapplied(task, step.options) if isinstance(task, str) else None
        if wrong:
            raise UsageError(f"step {step.name}: {wrong[1]}", self.path, step.lines[wrong[0]])

    def _allowed(self, stage: str) -> dict:
        """Option name -> its kind: a click parameter, or one of the runner's own kinds."""
        if stage == "promote":
            return dict(PROMOTE_KEYS)
        allowed = dict(stage_params(stage))
        allowed["from"] = "step"
        allowed.setdefault("output", "path")        # pad, tag, dedupe, eval: the file for stdout
        if stage in OWN_OUTPUT:
            allowed["stdout"] = "path"              # their -o is something else: stdout goes here
        if stage == "train":
            allowed["input"] = allowed["train"]     # input: is train: for the train stage
        return allowed

    def _check_keys(self, step: Step, body: Mapping, allowed: dict) -> None:
        for key in body:
            if key == "stage" or key in allowed:
                continue
            hint = get_close_matches(key, list(allowed), 1)
            did = f" (did you mean {hint[0]!r}?)" if hint else ""
            what = "promote" if step.stage == "promote" else f"seqtool {step.stage}"
            extra = ": write the options in the step itself" if key == "config" else ""
            raise UsageError(f"step {step.name}: unknown option {key!r} for {what}{did}{extra}",
                             self.path, body.line_of(key))

    def _value(self, step: Step, key: str, raw, kind):
        line = step.lines[key]
        if isinstance(raw, Mapping) and key in READS and set(raw) == {"from"}:
            raw = Ref(self.env.expand(raw["from"], raw.line_of("from")))
            if not isinstance(raw.step, str):
                raise UsageError(f"step {step.name}: {step.shown(key)}: from: expected a step name, "
                                 f"got {show(raw.step)}", self.path, line)
            return raw
        value = self.env.expand(raw, line)
        if key in EMPTY_IS_NONE and value == "":
            return None                  # ${env.SEQTOOL_VECTORS:-}: the option is not given (dropped)
        if getattr(kind, "multiple", False):        # a repeatable option (report's eval): one value or a list
            return [self._one(step, key, v, kind, line) for v in (value if isinstance(value, list) else [value])]
        return self._one(step, key, value, kind, line)

    def _one(self, step: Step, key: str, value, kind, line: int):
        kind = "path" if key in PATH_KEYS else kind
        try:
            value = _typed(value, kind)
        except _Expected as e:
            refs = " or {from: STEP}" if key in READS else ""
            raise UsageError(f"step {step.name}: {step.shown(key)}: expected {e.what}{refs}, got {show(value)}",
                             self.path, line) from None
        if kind == "path" or isinstance(getattr(kind, "type", None), (click.Path, click.File)):
            if value == "-":
                raise UsageError(f"step {step.name}: {step.shown(key)}: a pipeline reads and writes files, not - "
                                 "(stdin/stdout)", self.path, line)
            return self.resolve(value)
        return value

    def _shorthand(self, step: Step) -> None:
        """``from: STEP`` at the step's level is ``input: {from: STEP}``; train's ``input`` is ``train``."""
        opts, lines = step.options, step.lines
        key = "train" if step.stage == "train" else "input"
        if step.stage == "train" and "input" in opts:
            if "train" in opts:
                raise UsageError(f"step {step.name}: give input or train (the same thing), not both",
                                 self.path, lines["input"])
            opts["train"], lines["train"] = opts.pop("input"), lines.pop("input")
            step.written["train"] = step.written.pop("input")
        if "from" in opts:
            if key in opts:
                raise UsageError(f"step {step.name}: give {step.shown(key)} or from, not both", self.path,
                                 lines["from"])
            opts[key], lines[key] = Ref(opts.pop("from")), lines.pop("from")
            step.written[key] = step.written.pop("from")


class _Expected(Exception):
    def __init__(self, what: str):
        self.what = what


def _typed(value, kind):
    """``value`` checked against a click parameter's type or one of the runner's kinds."""
    if kind in ("path", "name", "step", "text"):
        if not isinstance(value, str) or not value:
            raise _Expected({"path": "a path", "name": "a name", "step": "a step name", "text": "a string"}[kind])
        return value
    if kind == "bool" or getattr(kind, "is_flag", False):
        if type(value) is not bool:
            raise _Expected("true or false")
        return value
    if kind == "delta":
        kind = click.FloatRange(0)
    t = getattr(kind, "type", kind)
    if isinstance(t, click.Choice):
        if value not in t.choices:
            raise _Expected("one of " + ", ".join(map(str, t.choices)))
        return value
    if isinstance(t, (click.types.IntParamType, click.types.FloatParamType)):
        is_int = isinstance(t, click.types.IntParamType)
        ok = type(value) is int or (not is_int and type(value) is float)
        desc = ("an integer" if is_int else "a number") + _range(t)
        if not ok or not _in_range(value, t):
            raise _Expected(desc)
        return float(value) if not is_int else value
    if isinstance(t, (click.Path, click.File)):
        return _typed(value, "path")
    if isinstance(t, click.types.StringParamType):
        return _typed(value, "text")
    try:                        # an option type added since: click's own conversion
        return t.convert(value, kind if isinstance(kind, click.Parameter) else None, None)
    except click.BadParameter:
        raise _Expected(f"a {t.name}") from None


def _range(t) -> str:
    parts = []
    if getattr(t, "min", None) is not None:
        parts.append(f"{'>' if t.min_open else '>='} {t.min}")
    if getattr(t, "max", None) is not None:
        parts.append(f"{'<' if t.max_open else '<='} {t.max}")
    return (" " + " and ".join(parts)) if parts else ""


def _in_range(value, t) -> bool:
    lo, hi = getattr(t, "min", None), getattr(t, "max", None)
    if lo is not None and (value < lo or (t.min_open and value == lo)):
        return False
    return hi is None or (value < hi or (not t.max_open and value == hi))
