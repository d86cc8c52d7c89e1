"""Rules of docs/architecture.md that import-linter cannot express.

The layer order and the absence of import cycles are checked by import-linter in CI
(`[tool.importlinter]` in pyproject.toml); these tests add: no module imports through a
subpackage's face (its ``__init__``), lowdose imports sit at the top of each file (the CLI may
import its torch-bound layers inside a command), and functions stay readable in length. A module
holds one idea, whatever its length; the ~450-line ceiling only flags a module that holds two.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "lowdose"
SUBPACKAGES = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
# The CLI imports these inside its commands so that `lowdose --help` does not import torch.
TORCH_BOUND = ("models", "training", "inference", "evaluation", "pipeline")
MAX_MODULE_LINES = 450  # a module past this most likely holds two ideas
MAX_FUNCTION_LINES = 100  # body lines (docstring excluded), as ruff formats them


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _lowdose_imports(tree: ast.AST):
    """(node, module name, inside a function) for every import of a lowdose module."""
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.ImportFrom) and (child.module or "").startswith("lowdose"):
                found.append((child, child.module, in_function))
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.startswith("lowdose"):
                        found.append((child, alias.name, in_function))
            visit(child, nested)

    visit(tree, False)
    return found


def test_the_package_has_the_layers_of_the_architecture():
    assert set(SUBPACKAGES) >= {
        "core",
        "physics",
        "phantoms",
        "io",
        "data",
        "models",
        "baselines",
        "simulate",
        "owndata",
        "training",
        "inference",
        "evaluation",
        "report",
        "pipeline",
        "cli",
    }
    flat = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    assert flat == [], f"modules outside a subpackage: {flat}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_through_a_subpackage_face(path):
    if path.name == "__init__.py":
        return  # a face may import from its own modules
    tree = ast.parse(path.read_text())
    for node, module, _ in _lowdose_imports(tree):
        if module in {f"lowdose.{name}" for name in SUBPACKAGES}:
            folder = PACKAGE / module.split(".")[1]
            names = [a.name for a in getattr(node, "names", [])]
            faces = [n for n in names if not (folder / f"{n}.py").exists()]
            assert not faces, (
                f"{path.name}:{node.lineno} imports {faces} from the face {module}; "
                "import them from the module that defines them"
            )
        assert module != "lowdose" or all(a.name == "__version__" for a in node.names), (
            f"{path.name}:{node.lineno} imports from the top-level package"
        )


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_lowdose_imports_are_at_the_top_of_the_file(path):
    in_cli = path.parent.name == "cli"
    for node, module, in_function in _lowdose_imports(ast.parse(path.read_text())):
        if not in_function:
            continue
        layer = module.split(".")[1] if "." in module else ""
        allowed = in_cli and layer in TORCH_BOUND
        assert allowed, (
            f"{path.relative_to(PACKAGE)}:{node.lineno} imports {module} inside a function; "
            "import it at the top (only the CLI may defer its torch-bound layers)"
        )


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_hold_one_idea_in_readable_functions(path):
    text = path.read_text()
    n_lines = len(text.splitlines())
    assert n_lines <= MAX_MODULE_LINES, f"{path.relative_to(PACKAGE)} has {n_lines} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0]
            docstring = isinstance(first, ast.Expr) and isinstance(
                getattr(first, "value", None), ast.Constant
            )
            start = first.end_lineno + 1 if docstring and len(node.body) > 1 else first.lineno
            body_lines = node.end_lineno - start + 1
            assert body_lines <= MAX_FUNCTION_LINES, (
                f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} has {body_lines} lines; "
                "split it into steps that each have a name"
            )
