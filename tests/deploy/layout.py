"""Reading the deployment files the way Docker would: the Dockerfile's stages and
instructions, deploy/compose.yaml, and what the image will contain (no Docker engine here)."""

from __future__ import annotations

import ast
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"


@dataclass
class Instruction:
    """One Dockerfile instruction: keyword, raw argument text, line number."""

    keyword: str
    args: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON (exec-form) argument list, or None for the shell form."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        assert isinstance(value, list)
        return [str(v) for v in value]


@dataclass
class Stage:
    """A ``FROM … AS name`` stage and its instructions."""

    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        """The stage's instructions of one kind, in order."""
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        """``ENV`` values of the stage (``KEY=value`` form, later ones win)."""
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for token in shlex.split(instruction.args):
                key, sep, value = token.partition("=")
                assert sep, f"line {instruction.line}: ENV without '=': {token!r}"
                values[key] = value
        return values


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages of a Dockerfile (comments dropped, continuation lines joined)."""
    logical: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append((start, pending + stripped))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    stages: list[Stage] = []
    for number, line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args.strip(), re.IGNORECASE)
            assert match, f"line {number}: unreadable FROM {args!r}"
            stages.append(Stage(match.group(1), match.group(2)))
            continue
        assert stages, f"line {number}: {keyword} before the first FROM"
        stages[-1].instructions.append(Instruction(keyword, args.strip(), number))
    return stages


def copy_sources(instruction: Instruction) -> tuple[list[str], str, str | None]:
    """(sources, destination, --from stage) of a COPY instruction."""
    tokens = instruction.exec_form() or shlex.split(instruction.args)
    origin = None
    while tokens and tokens[0].startswith("--"):
        flag = tokens.pop(0)
        if flag.startswith("--from="):
            origin = flag.removeprefix("--from=")
    assert len(tokens) >= 2, f"line {instruction.line}: COPY needs a source and a destination"
    return tokens[:-1], tokens[-1], origin


def pyproject() -> dict[str, Any]:
    """pyproject.toml as a dict."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def shipped_packages() -> list[str]:
    """Top-level packages of ``[tool.setuptools.packages.find] include`` (``web*`` → ``web``)."""
    include = pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted({pattern.rstrip("*").rstrip(".") for pattern in include})


def compose() -> dict[str, Any]:
    """deploy/compose.yaml as Docker Compose reads it (YAML merge keys resolved)."""
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def config_variables() -> set[str]:
    """Environment variables contactcenter/config.py reads: its upper-case string literals
    (the names it passes to its readers: ``get("X")``, ``_int(env, "X", …)`` …)."""
    tree = ast.parse((ROOT / "contactcenter" / "config.py").read_text(encoding="utf-8"))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.fullmatch(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]{4,}", node.value)
    }


def env_references(text: str) -> set[str]:
    """``${NAME}``, ``${NAME:-x}``, ``${NAME:?x}`` references in a shell or compose text
    (lines that are comments do not count)."""
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", code))
