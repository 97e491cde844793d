"""The import graph, read from the source (every import, lazy ones inside functions included)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import netpress

SRC = Path(netpress.__file__).parent
TECHNIQUES = ["prune", "quantize", "encode", "lottery", "distill", "lowrank"]
BASE = ["data", "models", "train", "report"]
NEUTRAL = ["state", "textfmt", "errors", "fileio", "registry", "hparams", "units"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every ``netpress...`` module ``path`` imports (``from a import b`` counts ``a.b`` when that is a module)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("netpress")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("netpress"):
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES}
    return out


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}
GRAPH = {m: imports_of(p) for m, p in MODULES.items()}


def within(mod: str, package: str) -> bool:
    return mod == f"netpress.{package}" or mod.startswith(f"netpress.{package}.")


def offenders(packages: list[str], forbidden: list[str]) -> list[str]:
    return sorted(f"{m} -> {i}" for m, deps in GRAPH.items() for i in deps
                  if any(within(m, p) for p in packages) and any(within(i, f) for f in forbidden))


def cycles(nodes: set[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle found by a depth-first search (enough to report one per strongly connected part)."""
    found, state = [], {}

    def visit(n, stack):
        state[n] = "open"
        for d in sorted(edges.get(n, ())):
            if d not in nodes:
                continue
            if state.get(d) == "open":
                found.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[n] = "done"

    for n in sorted(nodes):
        if n not in state:
            visit(n, [n])
    return found


def test_graph_is_read():
    assert "netpress.quantize.uniform" in GRAPH["netpress.quantize.ptq"]
    assert "netpress.state" in GRAPH["netpress.encode.api"]  # a lazy import inside a function counts


def test_techniques_and_base_know_no_cli_or_pipeline():
    assert offenders(TECHNIQUES + BASE + NEUTRAL + ["runs"], ["cli", "pipeline"]) == []


def test_data_and_models_know_no_compression():
    assert offenders(["data"], TECHNIQUES + ["pipeline", "runs", "models", "train"]) == []
    assert offenders(["models"], ["prune", "quantize", "encode", "lottery", "distill", "pipeline", "runs"]) == []


def test_file_format_does_not_depend_on_pruning_or_quantizer_internals():
    deps = {i for m, d in GRAPH.items() if within(m, "encode") for i in d}
    assert not [i for i in deps if within(i, "prune")]
    # the Codes contract (and the public export_codes that produces it) only
    assert {i for i in deps if within(i, "quantize")} <= {"netpress.quantize", "netpress.quantize.codes"}


def test_neutral_modules_import_only_neutral_modules():
    assert offenders(NEUTRAL, TECHNIQUES + BASE + ["cli", "pipeline", "runs"]) == []


@pytest.mark.parametrize("package", ["quantize", "prune", "encode"])
def test_technique_package_has_no_internal_import_cycle(package):
    nodes = {m for m in GRAPH if within(m, package) and m != f"netpress.{package}"}
    assert cycles(nodes, GRAPH) == []


def test_packages_have_no_import_cycle():
    """Package level: ``a -> b`` when any module of ``a`` imports one of ``b`` (the CLI may import everything)."""
    top = lambda m: ".".join(m.split(".")[:2])
    edges: dict[str, set[str]] = {}
    for m, deps in GRAPH.items():
        edges.setdefault(top(m), set()).update(top(i) for i in deps if top(i) != top(m))
    assert cycles(set(edges), edges) == []


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a", "b", "c"}, {"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
