"""House rules on the source tree itself, checked by parsing (nothing is imported or run).

* No test module imports another (``test_*``, ``conftest``, or ``tests.*``): such imports work
  only through pytest's ``sys.path`` insertion (they fail under ``--import-mode=importlib``),
  tie one file's skips and module-level code to another's, and hide shared helpers where
  benchmarks cannot reach them.  Shared helpers live in the package (e.g.
  :mod:`faceshot_core.matching.tiny_models`, :mod:`faceshot_core.matching.patch_extractor`);
  shared fixtures in ``tests/conftest.py``.
* No file under ``src/`` or ``benchmarks/`` manipulates ``sys.path``: the package is installed,
  and benchmarks run against the installed package like any user would.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"

#: Methods of ``sys.path`` (a list) that change it.
_MUTATORS = {"append", "extend", "insert", "remove", "pop", "clear", "sort", "reverse"}


def _is_test_module(name: str | None) -> bool:
    top = (name or "").split(".")[0]
    return top.startswith("test_") or top in ("conftest", "tests")


def imports_of_test_modules(source: str) -> list[str]:
    """Each import of a test module in ``source``, as ``line N: text`` (empty when none)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            # `from test_x import y`, `from .test_x import y`, `from . import test_x`
            names = [node.module] if node.module else []
            if node.level or node.module in (None, "tests"):
                names += [alias.name for alias in node.names]
        else:
            continue
        if any(_is_test_module(name) for name in names):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def _sys_aliases(tree: ast.AST) -> tuple[set[str], set[str]]:
    """Names bound to the ``sys`` module, and to ``sys.path`` itself (``from sys import path``)."""
    modules, paths = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name == "sys"}
        elif isinstance(node, ast.ImportFrom) and node.module == "sys" and not node.level:
            paths |= {a.asname or a.name for a in node.names if a.name == "path"}
    return modules, paths


def sys_path_changes(source: str) -> list[str]:
    """Each statement of ``source`` that changes ``sys.path``, as ``line N: text``.

    Counted: assigning, augmenting or deleting it or an item of it, calling a list method that
    changes it, importing it by name (``from sys import path``), and ``site.addsitedir``.
    Reading it is not counted.
    """
    tree = ast.parse(source)
    modules, paths = _sys_aliases(tree)

    def is_sys_path(node: ast.AST) -> bool:
        if isinstance(node, ast.Subscript):
            return is_sys_path(node.value)
        if isinstance(node, ast.Name):
            return node.id in paths
        return (
            isinstance(node, ast.Attribute)
            and node.attr == "path"
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
        )

    found = []
    for node in ast.walk(tree):
        hit = False
        if isinstance(node, ast.Assign | ast.Delete):
            hit = any(is_sys_path(t) for t in node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            hit = is_sys_path(node.target)
        elif isinstance(node, ast.ImportFrom) and node.module == "sys" and not node.level:
            hit = any(a.name == "path" for a in node.names)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            func = node.func
            hit = (func.attr in _MUTATORS and is_sys_path(func.value)) or (
                func.attr == "addsitedir"
                and isinstance(func.value, ast.Name)
                and func.value.id == "site"
            )
        if hit and isinstance(node, ast.stmt | ast.expr):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def _python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (REPO / folder).rglob("*.py"))


# --------------------------------------------------------------------------- the checkers


@pytest.mark.parametrize(
    "source",
    [
        "from test_matcher import PatchExtractor",
        "import test_matcher",
        "import test_matcher as tm",
        "from conftest import REPO",
        "import conftest",
        "from tests.test_matcher import shifted",
        "from tests import test_matcher",
        "import tests.conftest",
        "from .test_matcher import shifted",
        "from . import test_matcher",
        "def f():\n    from test_diffusion_features import tiny_sd\n",
    ],
)
def test_test_module_imports_are_found(source: str) -> None:
    assert len(imports_of_test_modules(source)) == 1


@pytest.mark.parametrize(
    "source",
    [
        "import pytest\nfrom faceshot_core.matching.patch_extractor import PatchExtractor",
        "from faceshot_core.testing import test_helpers",  # not a test module of ours
        "import attest_thing\nfrom contest import x",
        "from . import helpers",
    ],
)
def test_other_imports_pass(source: str) -> None:
    assert imports_of_test_modules(source) == []


@pytest.mark.parametrize(
    "source",
    [
        "import sys\nsys.path.insert(0, 'src')",
        "import sys\nsys.path.append('src')",
        "import sys\nsys.path.extend(['src'])",
        "import sys\nsys.path = ['src']",
        "import sys\nsys.path[0] = 'src'",
        "import sys\nsys.path[:0] = ['src']",
        "import sys\nsys.path += ['src']",
        "import sys\ndel sys.path[0]",
        "import sys as _s\n_s.path.insert(0, 'src')",
        "from sys import path\npath.insert(0, 'src')",  # the import and the call
        "import site\nsite.addsitedir('src')",
        "import sys\ndef f():\n    sys.path.pop()\n",
    ],
)
def test_sys_path_changes_are_found(source: str) -> None:
    expected = 2 if "from sys import path" in source else 1
    assert len(sys_path_changes(source)) == expected


@pytest.mark.parametrize(
    "source",
    [
        "import sys\nprint(sys.path)",
        "import sys\nfirst = sys.path[0]",
        "import sys\nok = 'src' in sys.path",
        "import os\nos.path.join('a', 'b')",
        "from pathlib import Path\np = Path('x')\np.path = 1",
    ],
)
def test_reading_sys_path_and_other_paths_pass(source: str) -> None:
    assert sys_path_changes(source) == []


# --------------------------------------------------------------------------- the tree


def test_no_test_module_imports_another() -> None:
    files = [*sorted(TESTS.glob("test_*.py")), TESTS / "conftest.py"]
    assert len(files) > 20
    offenders = {
        str(p.relative_to(REPO)): found
        for p in files
        if (found := imports_of_test_modules(p.read_text(encoding="utf-8")))
    }
    assert offenders == {}, "move shared helpers into the package or tests/conftest.py"


def test_src_and_benchmarks_leave_sys_path_alone() -> None:
    files = _python_files("src", "benchmarks")
    assert any(p.parent.name == "benchmarks" for p in files) and len(files) > 50
    offenders = {
        str(p.relative_to(REPO)): found
        for p in files
        if (found := sys_path_changes(p.read_text(encoding="utf-8")))
    }
    assert offenders == {}, "install the package (pip install -e .) instead of editing sys.path"
