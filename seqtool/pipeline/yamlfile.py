"""Reading a pipeline file: safe YAML that remembers line numbers, and ``${...}`` interpolation.

``load(path)`` parses with a SafeLoader subclass (only plain YAML types; no
Python tags, no code) whose mappings are ``Mapping`` dicts carrying the line of
every key, so a validation error can say ``file.yaml:12: ...``. A key given
twice is an error, not a silent overwrite.

Interpolation, in string values:

    ${vars.NAME}            the variable NAME of the file's ``vars`` (or ``--set NAME=...``)
    ${env.NAME}             the environment variable NAME; an error when it is unset
    ${env.NAME:-default}    ... or ``default`` (literal text) when it is unset or empty
    $${                     a literal ``${``

A value that is exactly one reference keeps the referenced value's type
(``epochs: ${vars.epochs}`` is an integer); environment variables and
``--set`` values are read as YAML scalars (``3`` is an integer, ``true`` a
boolean, ``1e-3`` a number), so they can fill numeric options too.
"""
import os
import re

import yaml

from seqtool.errors import UsageError

_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_NAMED = re.compile(r"(vars|env)\.([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.S)
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class Mapping(dict):
    """A YAML mapping: ``line`` is where it starts, ``lines[key]`` the line of each key (from 1)."""

    line: int = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lines: dict = {}

    def line_of(self, key) -> int:
        return self.lines.get(key, self.line)


class _Loader(yaml.SafeLoader):
    """SafeLoader whose mappings record line numbers and refuse duplicate keys."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Mapping:
    explicit = sum(k.tag != "tag:yaml.org,2002:merge" for k, _ in node.value)
    loader.flatten_mapping(node)            # ``<<: *defaults`` entries come first; the mapping's own override them
    merged = len(node.value) - explicit
    mapping = Mapping()
    mapping.line = node.start_mark.line + 1
    own = set()
    for i, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise _Located(f"keys are names, not {_show(key)}", line)
        if key in own or (key in mapping and i < merged):
            raise _Located(f"{key!r} is given twice (first on line {mapping.lines[key]})", line)
        if i >= merged:
            own.add(key)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.lines[key] = line
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _Located(Exception):
    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.message, self.line = message, line


PIPELINE_FILE = "a pipeline file is a mapping with steps: (and optionally vars:)"


def load(path: str, expected: str = PIPELINE_FILE) -> Mapping:
    """The top-level mapping of the YAML file at ``path``; UsageError (with the line) otherwise
    (``expected`` says what the file should hold, when it is not a mapping)."""
    try:
        with open(path, encoding="utf-8") as f:
            loader = _Loader(f)          # a SafeLoader subclass that records line numbers
            try:
                doc = loader.get_single_data()
            finally:
                loader.dispose()
    except OSError as e:
        raise UsageError(e.strerror or str(e), path) from None
    except UnicodeDecodeError as e:
        raise UsageError(f"not UTF-8 text ({e.reason})", path) from None
    except _Located as e:
        raise UsageError(e.message, path, e.line) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        raise UsageError(f"not valid YAML: {problem}", path, mark.line + 1 if mark else None) from None
    if not isinstance(doc, Mapping):
        raise UsageError(expected, path, 1 if doc is None else None)
    return doc


def _show(value) -> str:
    """A value as a message shows it: strings quoted, YAML spellings for the rest."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


show = _show


def scalar(text: str):
    """Text from the environment or ``--set`` read as a YAML scalar: ``3`` -> 3, ``true`` -> True."""
    if _NUMBER.fullmatch(text.strip()):
        number = float(text)
        return int(text) if re.fullmatch(r"[-+]?\d+", text.strip()) else number
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (str, bool, int, float)) else text


def _as_text(value) -> str:
    if isinstance(value, bool) or value is None:
        return _show(value)
    return str(value)


class Interpolator:
    """Expands ``${vars.X}`` and ``${env.X}`` in strings; variables may refer to each other."""

    def __init__(self, variables: Mapping, overrides: dict, path: str, environ=None):
        self.raw = variables
        self.overrides = overrides
        self.path = path
        self.environ = os.environ if environ is None else environ
        self.done: dict = {}
        self.busy: list[str] = []

    def var(self, name: str, line: int):
        """The value of variable ``name``, expanded (a reference on ``line`` asked for it)."""
        if name in self.done:
            return self.done[name]
        if name in self.overrides:
            value, where = self.overrides[name], None
        elif name in self.raw:
            value, where = self.raw[name], self.raw.line_of(name)
        else:
            known = ", ".join(self.raw) or "none"
            raise UsageError(f"undefined variable ${{vars.{name}}} (defined: {known})", self.path, line)
        if name in self.busy:
            chain = " -> ".join(self.busy[self.busy.index(name):] + [name])
            raise UsageError(f"variable {name} refers to itself ({chain})", self.path, where)
        self.busy.append(name)
        try:
            self.done[name] = self.expand(value, where if where is not None else line)
        finally:
            self.busy.pop()
        return self.done[name]

    def expand(self, value, line: int):
        """``value`` with its references expanded; non-strings come back as they are."""
        if not isinstance(value, str):
            return value
        whole = _REF.fullmatch(value)
        if whole and whole.group(1) is not None:
            return self._lookup(whole.group(1), line)
        return _REF.sub(lambda m: "${" if m.group(1) is None else _as_text(self._lookup(m.group(1), line)),
                        value)

    def _lookup(self, ref: str, line: int):
        m = _NAMED.fullmatch(ref)
        if not m:
            raise UsageError(f"bad reference ${{{ref}}}: expected ${{vars.NAME}}, ${{env.NAME}} or "
                             f"${{env.NAME:-default}}", self.path, line)
        kind, name, default = m.groups()
        if kind == "vars":
            if default is not None and name not in self.raw and name not in self.overrides:
                return scalar(default)
            return self.var(name, line)
        text = self.environ.get(name)
        if not text and default is not None:
            text = default
        if text is None:
            raise UsageError(f"environment variable {name} is not set (give a default: ${{env.{name}:-value}})",
                             self.path, line)
        return scalar(text)
