"""The package's API is its modules: nobody imports names from ``crm_store`` itself."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import Session

import crm_store
from crm_store import audit
from crm_store.models import Consumer

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("contactcenter", "telephony", "speech", "crm_store", "ivr", "campaigns", "web")
SOURCES += ("devtools", "bench", "tests", "webhooks.py")


def _python_files() -> list[Path]:
    files: list[Path] = []
    for source in SOURCES:
        path = ROOT / source
        files.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    return files


def test_the_package_exports_no_names_of_its_own() -> None:
    assert crm_store.__all__ == []


def test_imports_from_the_package_name_its_modules_only() -> None:
    names: list[tuple[str, str]] = []
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        names.extend(
            (str(path.relative_to(ROOT)), alias.name)
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "crm_store" and not node.level
            for alias in node.names
        )
    assert names  # the check sees the imports it is about
    not_modules = [
        (where, name)
        for where, name in names
        if importlib.util.find_spec(f"crm_store.{name}") is None
    ]
    assert not_modules == []


def test_importing_the_package_installs_the_audit_listeners() -> None:
    assert event.contains(Session, "before_flush", audit._load_deleted)
    assert Consumer in audit.AUDITED
    for model in audit.AUDITED:
        for name, listener in (
            ("after_insert", audit._after_insert),
            ("after_update", audit._after_update),
            ("after_delete", audit._after_delete),
        ):
            assert event.contains(model, name, listener), (model, name)
