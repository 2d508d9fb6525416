"""The architecture guard: layers, import placement, module sizes, docstrings.

The layers of ``docs/architecture.md``, bottom to top; a module may import its own layer and
the layers below it, never one above. Modules of one layer that are independent of each other
(``telephony`` and ``speech``) must not import each other either. Every import counts: at the
top, inside functions and under ``if TYPE_CHECKING:`` alike, since each one is a dependency a
reader must know about.

Public class names are unique across the packages, so a name always means one thing.

The checker runs over the source with :mod:`ast` (nothing is imported), so a planted
back-import fails the test before it could fail at run time; the tests below plant one to
show that the guard bites.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: (layer, module prefixes), bottom first. The longest matching prefix decides a module's
#: layer, so ``contactcenter.services`` sits above ``contactcenter``'s foundation modules.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "foundation",
        (
            "contactcenter",
            "contactcenter.config",
            "contactcenter.calendar_ru",
            "contactcenter.phones",
            "contactcenter.russian",
            "contactcenter.cli_support",
        ),
    ),
    ("seams", ("telephony", "speech")),
    ("store", ("crm_store",)),
    ("services", ("contactcenter.services", "contactcenter.ingest")),
    ("ivr", ("ivr",)),
    ("campaigns", ("campaigns",)),
    (
        "application",
        (
            "webhooks",
            "web",
            "devtools",
            "contactcenter.wiring",
            "contactcenter.cli",
            "bench",
        ),
    ),
)
#: Packages of one layer that must not import each other.
INDEPENDENT: tuple[frozenset[str], ...] = (frozenset({"telephony", "speech"}),)
#: The project's own top-level packages and modules (anything else is a library).
PROJECT = ("contactcenter", "telephony", "speech", "crm_store", "ivr", "campaigns", "web")
PROJECT += ("devtools", "webhooks", "bench")
#: Where the guard looks: every package that ships, the web module and the benchmarks.
SOURCES = ("contactcenter", "telephony", "speech", "crm_store", "ivr", "campaigns", "web")
SOURCES += ("devtools", "bench", "webhooks.py")
#: Packages whose modules stay under this many lines (hub modules are split).
SIZE_LIMITED = ("ivr", "campaigns", "telephony")
MAX_LINES = 700
#: The comment that justifies an import inside a function (e.g. an optional native library).
DEFERRED = "# deferred:"


@dataclass(frozen=True)
class Import:
    """One import of a project module: who imports what, where, and how."""

    importer: str
    imported: str
    path: Path
    line: int
    top_level: bool
    deferred: bool


@dataclass(frozen=True)
class Violation:
    """An import that goes against the layers."""

    found: Import
    reason: str

    def __str__(self) -> str:
        imp = self.found
        return f"{imp.path}:{imp.line}: {imp.importer} imports {imp.imported}: {self.reason}"


def layer_of(module: str) -> int | None:
    """Index of the layer ``module`` belongs to (longest prefix), None for a library."""
    best: tuple[int, int] | None = None
    for index, (_name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    return None if best is None else best[0]


def module_name(root: Path, path: Path) -> str:
    """Dotted module name of ``path`` under ``root`` (a package's ``__init__`` is the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def python_files(root: Path, sources: tuple[str, ...] = SOURCES) -> Iterator[Path]:
    """Every Python file of ``sources`` under ``root``."""
    for source in sources:
        path = root / source
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from sorted(path.rglob("*.py"))


def imports_of(root: Path, path: Path) -> Iterator[Import]:
    """The imports of project modules that ``path`` makes, wherever they stand."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source, filename=str(path))
    importer = module_name(root, path)
    package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
    top_ids = {id(node) for node in _module_level(tree.body)}
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names = [".".join([*base, node.module] if node.module else base)]
            else:
                names = [node.module or ""]
        for name in names:
            if name.split(".")[0] not in PROJECT:
                continue
            end = getattr(node, "end_lineno", None) or node.lineno
            text = "\n".join(lines[node.lineno - 1 : end])
            yield Import(
                importer=importer,
                imported=name,
                path=path,
                line=node.lineno,
                top_level=id(node) in top_ids,
                deferred=DEFERRED in text,
            )


def _module_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements that run at import time: the module body, its ifs and trys."""
    for node in body:
        yield node
        if isinstance(node, ast.If):
            yield from _module_level(node.body)
            yield from _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            yield from _module_level(node.body)
            for handler in node.handlers:
                yield from _module_level(handler.body)
            yield from _module_level(node.orelse)
            yield from _module_level(node.finalbody)


def layer_violations(root: Path, sources: tuple[str, ...] = SOURCES) -> list[Violation]:
    """Every import under ``root`` that reaches a higher layer or an independent sibling."""
    found: list[Violation] = []
    for path in python_files(root, sources):
        for imp in imports_of(root, path):
            mine, theirs = layer_of(imp.importer), layer_of(imp.imported)
            if mine is None or theirs is None:
                continue
            if theirs > mine:
                reason = f"layer {LAYERS[mine][0]!r} may not import layer {LAYERS[theirs][0]!r}"
                found.append(Violation(imp, reason))
                continue
            a, b = imp.importer.split(".")[0], imp.imported.split(".")[0]
            if a != b and any({a, b} <= group for group in INDEPENDENT):
                found.append(Violation(imp, f"{a} and {b} are independent of each other"))
    return found


def inner_imports(root: Path, sources: tuple[str, ...] = SOURCES) -> list[Import]:
    """Project imports inside functions that carry no ``# deferred:`` reason."""
    return [
        imp
        for path in python_files(root, sources)
        for imp in imports_of(root, path)
        if not imp.top_level and not imp.deferred
    ]


# --------------------------------------------------------------------------- the tree


def test_no_layer_imports_a_higher_one() -> None:
    assert [str(v) for v in layer_violations(ROOT)] == []


def test_imports_stand_at_module_tops() -> None:
    found = [
        f"{imp.path.relative_to(ROOT)}:{imp.line}: {imp.imported}" for imp in inner_imports(ROOT)
    ]
    assert found == []


def test_no_dynamic_imports_in_the_domain_packages() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in python_files(ROOT, ("ivr", "campaigns", "crm_store", "telephony"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "import_module" in line or "__import__(" in line
    ]
    assert found == []


def test_hub_modules_stay_split() -> None:
    too_long = {
        str(path.relative_to(ROOT)): count
        for path in python_files(ROOT, SIZE_LIMITED)
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert too_long == {}


def test_docstrings_point_inside_the_repository() -> None:
    outside = re.compile(r"\.\./shared|shared/docs|/work/")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in python_files(ROOT)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if outside.search(line)
    ]
    assert found == []


def test_public_class_names_are_unique() -> None:
    defined: dict[str, list[str]] = {}
    for path in python_files(ROOT):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                defined.setdefault(node.name, []).append(module_name(ROOT, path))
    assert {name: where for name, where in defined.items() if len(where) > 1} == {}


def test_every_project_module_has_a_layer() -> None:
    unplaced = sorted(
        module_name(ROOT, path)
        for path in python_files(ROOT)
        if layer_of(module_name(ROOT, path)) is None
    )
    assert unplaced == []


# --------------------------------------------------------------------------- the guard bites


def _plant(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("importer", "statement"),
    [
        ("telephony/base.py", "from campaigns.jobs import dial\n"),
        ("crm_store/models.py", "import ivr.session\n"),
        ("ivr/voice.py", "def f():\n    from campaigns import status\n"),
        (
            "ivr/voice.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import webhooks\n",
        ),
        ("campaigns/service.py", "from contactcenter.wiring import build_services\n"),
        ("contactcenter/config.py", "from crm_store import db\n"),
        ("telephony/sms.py", "from speech.audio import decode\n"),
        ("ivr/voice.py", "from ..campaigns import status\n"),
    ],
)
def test_a_planted_back_import_fails(tmp_path: Path, importer: str, statement: str) -> None:
    root = _plant(tmp_path, {importer: statement})
    [violation] = layer_violations(root)
    assert violation.found.path == root / importer


def test_downward_imports_pass(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "campaigns/service.py": "from ivr.voice import x\nfrom crm_store.db import y\n",
            "ivr/voice.py": "from contactcenter.services import Services\nimport telephony\n",
            "contactcenter/services.py": "from crm_store.db import Database\n",
            "crm_store/messages.py": "from telephony.status import message_status\n",
            "devtools/simulator.py": "import webhooks\nfrom campaigns import status\n",
        },
    )
    assert layer_violations(root) == []


def test_an_import_inside_a_function_needs_a_reason(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "speech/recognizer.py": (
                "def load():\n"
                "    from speech.audio import decode  # deferred: optional native library\n"
                "    from speech.grammar import g\n"
            )
        },
    )
    [found] = inner_imports(root)
    assert (found.imported, found.line) == ("speech.grammar", 3)
