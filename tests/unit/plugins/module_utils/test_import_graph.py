"""module_utils import each other in one direction: no cycle, so no import deferred into a function to
break one, and each module imports on its own in a fresh interpreter (as Ansible's AnsiballZ and the
filters load them, one at a time, in any order)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = "ansible_collections.cpu_llm.infra.plugins.module_utils"
ROOT = Path(__file__).resolve().parents[4] / "collections" / PACKAGE.replace(".", "/")
MODULES = sorted(p.stem for p in ROOT.glob("*.py") if p.stem != "__init__")


def _imports(name):
    """The module_utils modules `name` imports, anywhere in its file (module level or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse((ROOT / f"{name}.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == PACKAGE:
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE + "."):
            found.add(node.module[len(PACKAGE) + 1:].split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(a.name[len(PACKAGE) + 1:].split(".")[0] for a in node.names
                         if a.name.startswith(PACKAGE + "."))
    return found & set(MODULES)


def test_the_module_utils_import_graph_has_no_cycle():
    graph = {name: _imports(name) for name in MODULES}
    done, path = set(), []

    def visit(name):
        if name in path:
            cycle = [*path[path.index(name):], name]
            pytest.fail(f"module_utils import cycle: {' -> '.join(cycle)}")
        if name in done:
            return
        path.append(name)
        for other in sorted(graph[name]):
            visit(other)
        path.pop()
        done.add(name)

    for name in MODULES:
        visit(name)
    assert graph["memory_fit"] <= {"throughput_model", "llm_hardware"}, "memory_fit is the bottom of the sizing"
    assert "sizing" not in graph["fleet_sizing"] and "memory_fit" in graph["fleet_sizing"]


@pytest.mark.parametrize("name", MODULES)
def test_each_module_imports_alone_in_a_fresh_interpreter(name):
    result = subprocess.run([sys.executable, "-c", f"import {PACKAGE}.{name}"], capture_output=True, text=True,
                            check=False, env={"PYTHONPATH": str(ROOT.parents[4])}, timeout=60)
    assert result.returncode == 0, result.stderr
