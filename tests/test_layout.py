"""The package's architecture, checked from its source: imports point down only, no module imports
another's private name, and there is no circle of imports.

Layers, bottom first (a module may import its own layer and the layers below it):

    0  errors, runtime, wording, verbose, kernels/   what everything stands on
    1  data/                            records, vocabularies, batches, metrics
    2  model/                           layers, training, model files
    3  predict                          inference shared by the stages, the Dask tasks and the API
    4  stages/, report/                 one module per verb; the HTML report the report stage writes
    5  distributed/                     the --dask twins of the stages
    6  pipeline/                        the YAML runner
    7  api, cli, cliopts, __main__, __init__   the faces
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "seqtool"
LAYERS = {"errors": 0, "runtime": 0, "wording": 0, "verbose": 0, "kernels": 0, "data": 1, "model": 2, "predict": 3,
          "stages": 4, "report": 4, "distributed": 5, "pipeline": 6, "api": 7, "cli": 7, "__main__": 7,
          "__init__": 7}
# The deliberate exception, commented where it happens: the pipeline validates its steps against the
# CLI's own click parameters (pipeline/spec.py stage_params).
ALLOWED_UP = {("seqtool.pipeline.spec", "seqtool.cli")}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1] if len(parts) > 1 else "__init__"]


def imports(module: str, source: str) -> list[tuple[str, list[str]]]:
    """(imported seqtool module, names taken from it) for every import in ``source``, lazy ones included."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("seqtool")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("seqtool"):
            names = [a.name for a in node.names]
            submodules = [n for n in names if f"{node.module}.{n}" in MODULES]
            out += [(f"{node.module}.{n}", []) for n in submodules]
            out.append((node.module, [n for n in names if n not in submodules]))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            package = module if MODULES.get(module, Path()).name == "__init__.py" else module.rsplit(".", 1)[0]
            out.append((f"{package.rsplit('.', node.level - 1)[0]}.{node.module}", []))
    return out


def violations(module: str, source: str) -> list[str]:
    """What is wrong with the imports of ``module`` (its ``source``): upward imports, private names."""
    found = []
    for target, names in imports(module, source):
        if target == "seqtool" and names == ["__version__"]:
            continue                                       # the version string, from the package itself
        if target not in MODULES:
            found.append(f"{module} imports {target}, which does not exist")
            continue
        if (module, target) not in ALLOWED_UP and layer(target) > layer(module):
            found.append(f"{module} (layer {layer(module)}) imports {target} (layer {layer(target)})")
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        if private:
            found.append(f"{module} imports private {private} from {target}")
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_and_take_no_private_names(module):
    assert violations(module, MODULES[module].read_text()) == []


def test_the_check_reports_an_upward_import_and_a_private_name():
    source = "def f():\n    from seqtool.pipeline.run import run_pipeline\n    from seqtool.predict import _prepare\n"
    assert violations("seqtool.stages.tag", source) == [
        "seqtool.stages.tag (layer 4) imports seqtool.pipeline.run (layer 6)",
        "seqtool.stages.tag imports private ['_prepare'] from seqtool.predict"]


def test_no_circle_of_imports():
    graph = {m: {t for t, _ in imports(m, p.read_text()) if t in MODULES and t != m and (m, t) not in ALLOWED_UP
                 and t != "seqtool"} for m, p in MODULES.items()}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                raise AssertionError("circle of imports: " + " -> ".join(path[path.index(t):] + [t]))
            if t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
