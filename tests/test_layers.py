"""The import contract in pyproject.toml ([tool.importlinter]), checked by import-linter on the package
as it is installed (cli/ and export/ inside actionkit/), and the rule that no module imports another's
private names."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"


def stage_installed_layout(target: Path) -> Path:
    """Copy the package into ``target`` laid out as an installation lays it out: each folder of
    ``[tool.setuptools.package-dir]`` (``export/`` -> ``actionkit/export``) inside its parent package,
    so import-linter sees the same module tree users import."""
    package_dirs = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-dir"]
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package, folder in sorted(package_dirs.items(), key=lambda item: item[0].count(".")):
        shutil.copytree(ROOT / folder, target / package.replace(".", "/"), ignore=ignore)
    return target


def lint_imports(staged: Path) -> subprocess.CompletedProcess:
    linter = shutil.which("lint-imports") or pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    env = {**os.environ, "PYTHONPATH": str(staged)}
    return subprocess.run([linter, "--no-cache", str(PYPROJECT)], cwd=staged, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_import_contract_holds(tmp_path: Path) -> None:
    result = lint_imports(stage_installed_layout(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "added_import", "message"), [
    ("models/i3d.py", "import actionkit.hub", "actionkit.models is not allowed to import actionkit.hub"),
    ("predict/windows.py", "import actionkit.predict.timeline", "No cycles are allowed in actionkit.predict"),
    ("predict/recognizer.py", "import actionkit.export", "actionkit.predict is not allowed to import actionkit.export"),
])
def test_the_contract_fails_on_a_forbidden_import(tmp_path: Path, module: str, added_import: str,
                                                 message: str) -> None:
    """The contract is not vacuous: each kind of breach the layers forbid makes ``lint-imports`` fail."""
    staged = stage_installed_layout(tmp_path)
    with open(staged / "actionkit" / module, "a", encoding="utf-8") as f:
        f.write(f"\n{added_import}  # noqa: E402\n")
    result = lint_imports(staged)
    assert result.returncode != 0
    assert message in result.stdout


def _private_imports(path: Path) -> list[str]:
    """``from actionkit... import _name`` and ``from .x import _name`` in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("actionkit")):
            found += [f"{path.relative_to(ROOT)}:{node.lineno} imports {a.name}" for a in node.names
                      if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    sources = [p for folder in ("actionkit", "cli", "export", "benchmarks", "examples")
               for p in (ROOT / folder).rglob("*.py")]
    assert sources
    assert [hit for path in sources for hit in _private_imports(path)] == []


def test_the_design_cards_entry_points_import() -> None:
    code = "import actionkit.predict, actionkit.train, actionkit.export; from actionkit.predict import Recognizer"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
