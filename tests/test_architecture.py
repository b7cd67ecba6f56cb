"""The layout rules a newcomer relies on, checked on the source: the apps' layering (with
import-linter, whose contracts are in pyproject.toml), module sizes and thin views."""

import ast
import importlib
from pathlib import Path

import pytest
from importlinter import cli

ROOT = Path(__file__).resolve().parent.parent
APPS = ("loyalty", "predictions", "reviews", "learning", "integrations", "home")
MAX_MODULE_LINES = 650
MAX_VIEW_LINES = 35


def _app_modules() -> list[Path]:
    return sorted(
        path
        for app in APPS
        for path in (ROOT / app).rglob("*.py")
        if "migrations" not in path.parts and "__pycache__" not in path.parts
    )


def _view_modules() -> list[Path]:
    """Modules that hold request handlers: `views.py`, the modules of a `views/` package."""
    return [
        path
        for path in _app_modules()
        if path.name == "views.py" or (path.parent.name == "views" and path.name != "__init__.py")
    ]


def _views(module: Path) -> list[tuple[str, int]]:
    """(name, lines from `def` to the last line) of each public function and each method of a
    class: the request handlers. Private helpers (a leading underscore) are not views."""
    tree = ast.parse(module.read_text(), filename=str(module))
    found = []
    for node in tree.body:
        functions = node.body if isinstance(node, ast.ClassDef) else [node]
        prefix = f"{node.name}." if isinstance(node, ast.ClassDef) else ""
        for function in functions:
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                if not function.name.startswith("_"):
                    lines = function.end_lineno - function.lineno + 1
                    found.append((f"{prefix}{function.name}", lines))
    return found


def test_the_apps_keep_their_layers_and_the_engine_stays_plain_python(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert cli.lint_imports(no_cache=True, no_logo=True) == 0


def test_no_app_module_is_over_the_size_limit():
    too_long = {
        str(path.relative_to(ROOT)): lines
        for path in _app_modules()
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert too_long == {}


@pytest.mark.parametrize("module", _view_modules(), ids=lambda path: str(path.relative_to(ROOT)))
def test_views_are_thin(module):
    assert _views(module), "a views module without a view"
    too_long = {name: lines for name, lines in _views(module) if lines > MAX_VIEW_LINES}
    assert too_long == {}


def _app_imports(path: Path) -> list[tuple[int, str, str]]:
    """(line, module, name) of every `from <app module> import name` in a file, those inside
    functions included (the benchmarks import the apps lazily, after Django is set up)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in APPS:
                found += [(node.lineno, node.module, alias.name) for alias in node.names]
    return found


@pytest.mark.parametrize(
    "script", sorted((ROOT / "bench").glob("*.py")), ids=lambda path: path.name
)
def test_the_benchmarks_import_what_exists(script):
    """No test runs the benchmarks: a module or name they import that moved would show only
    when someone next measures."""
    missing = []
    for line, module_name, name in _app_imports(script):
        module = importlib.import_module(module_name)
        if not hasattr(module, name):
            try:
                importlib.import_module(f"{module_name}.{name}")
            except ModuleNotFoundError:
                missing.append(f"{script.name}:{line} {module_name}.{name}")
    assert _app_imports(script) or script.name == "__init__.py"
    assert missing == []


def test_the_size_rules_see_what_they_measure():
    """The checks above read real files: every app's modules, and views in every app that
    has pages or an API (a walk that found nothing would pass vacuously)."""
    assert {path.relative_to(ROOT).parts[0] for path in _app_modules()} == set(APPS)
    viewed = {path.relative_to(ROOT).parts[0] for path in _view_modules()}
    assert viewed == {"loyalty", "reviews", "learning", "integrations", "home"}
