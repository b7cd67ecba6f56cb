"""predictions.ml stays plain Python: no Django, DRF, Celery or project app imports."""

import ast
from pathlib import Path

import predictions.ml

PACKAGE = Path(predictions.ml.__file__).parent
FORBIDDEN_ROOTS = {
    "django",
    "rest_framework",
    "drf_spectacular",
    "django_filters",
    "django_htmx",
    "environ",
    "celery",
    "kombu",
    "loyalty",
    "reviews",
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute-or-relative module name) of every import in a file, nested ones too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            found += [
                (node.lineno, f"{module}.{alias.name}".lstrip(".") if node.level == 0 else module)
                for alias in node.names
            ]
    return found


def offending(name: str) -> bool:
    if name.startswith(".."):
        return True  # climbs out of predictions.ml into the Django app
    if name.startswith("."):
        return False
    root = name.split(".")[0]
    if root in FORBIDDEN_ROOTS:
        return True
    return root == "predictions" and not name.startswith("predictions.ml")


def test_package_imports_nothing_from_django_or_the_apps():
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 5
    bad = [
        f"{path.relative_to(PACKAGE)}:{line}: {name}"
        for path in sources
        for line, name in imported_modules(path)
        if offending(name)
    ]
    assert bad == []


def test_the_checker_catches_forbidden_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import django.db\n"
        "from rest_framework import serializers\n"
        "from predictions.models import ModelVersion\n"
        "from ..models import Prediction\n"
        "def late():\n"
        "    from loyalty.models import Member\n"
        "from celery import shared_task\n"
        "from . import features\n"
        "import numpy\n"
        "from predictions.ml import churn\n"
    )
    flagged = sorted(name for _, name in imported_modules(sample) if offending(name))
    assert flagged == [
        "..models",
        "celery.shared_task",
        "django.db",
        "loyalty.models.Member",
        "predictions.models.ModelVersion",
        "rest_framework.serializers",
    ]
