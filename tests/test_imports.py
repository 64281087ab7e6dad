"""Modules depend one way (design §2): diff never imports evals or the agent, evals never the agent.

Checked twice: statically, over every import statement of the package's modules (function-level lazy imports
included), and at run time, by importing every module of a package in a fresh interpreter and looking at what
it loaded."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "orglab"
# package -> packages it must never import
FORBIDDEN = {"orglab.diff": ("orglab.evals", "orglab.agent"), "orglab.evals": ("orglab.agent",),
             "orglab.organisms": ("orglab.diff", "orglab.evals", "orglab.agent", "orglab.mitigation", "orglab.train")}


def modules_of(package: str) -> list[Path]:
    return sorted((ROOT.parent / package.replace(".", "/")).rglob("*.py"))


def imported_names(path: Path) -> set[str]:
    """Every module an import statement in `path` names, at any depth of the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_of_the_package_names_a_forbidden_package(package):
    wrong = [f"{path.relative_to(ROOT.parent)} imports {name}"
             for path in modules_of(package) for name in sorted(imported_names(path))
             if any(within(name, bad) for bad in FORBIDDEN[package])]
    assert not wrong, "imports against the dependency direction:\n" + "\n".join(wrong)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_importing_every_module_loads_no_forbidden_package(package):
    modules = [".".join(p.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
               for p in modules_of(package)]
    code = ("import importlib, json, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted(sys.modules)))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                       check=True).stdout)
    wrong = [m for m in loaded if any(within(m, bad) for bad in FORBIDDEN[package])]
    assert not wrong, f"importing {package} loaded {wrong}"


def test_the_static_check_sees_lazy_imports(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from orglab.agent.grader import parse_score\n    import orglab.evals.run\n")
    assert {"orglab.agent.grader", "orglab.evals.run"} <= imported_names(path)
