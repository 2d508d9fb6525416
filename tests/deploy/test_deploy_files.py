"""The image and the compose file, checked without a Docker engine: their structure, and that
every command, module, file and variable they name exists where the image will have it."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import redis
import yaml
from rq import Queue, Worker

from contactcenter.cli import main as cli_main
from tests.deploy.layout import (
    COMPOSE,
    DEPLOY,
    DOCKERFILE,
    DOCKERIGNORE,
    ROOT,
    Stage,
    compose,
    config_variables,
    copy_sources,
    env_references,
    parse_dockerfile,
    pyproject,
    shipped_packages,
)

IMAGE_SERVICES = ("migrate", "app", "worker")
"""Services that run our image (built from the Dockerfile)."""

KNOWN_BINARIES = {
    "postgres": {"pg_isready"},
    "redis": {"redis-server", "redis-cli"},
    "prometheus": {"wget"},
}
"""Executables of the third-party images that compose.yaml calls."""

NOT_CONFIG_VARIABLES = {"PROMETHEUS_MULTIPROC_DIR": "prometheus_client's multiprocess mode"}
"""Variables our services set that contactcenter/config.py does not read, and who does."""


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    data = compose()
    assert isinstance(data.get("services"), dict)
    return data["services"]


def _console_scripts() -> dict[str, str]:
    scripts = pyproject()["project"]["scripts"]
    assert isinstance(scripts, dict)
    return scripts


def _dependency_names() -> set[str]:
    names = set()
    for requirement in pyproject()["project"]["dependencies"]:
        name = requirement.split("[")[0]
        for sep in "<>=!~ ;":
            name = name.split(sep)[0]
        names.add(name.lower())
    return names


def _check_click_path(args: list[str]) -> None:
    """``contactcenter A B …``: every leading word names a command of the real CLI."""
    command: click.Command = cli_main
    for word in args:
        if word.startswith("-") or not isinstance(command, click.Group):
            break
        assert word in command.commands, f"`contactcenter … {word}` is not a command"
        command = command.commands[word]
    assert not isinstance(command, click.Group), f"`contactcenter {' '.join(args)}` is a group"


def _check_python_module_file(module: str) -> Path:
    """A dotted module of ours: its file exists inside a package the image installs."""
    top = module.split(".")[0]
    assert top in shipped_packages(), f"{module}: {top} is not a shipped package"
    path = ROOT.joinpath(*module.split(".")).with_suffix(".py")
    assert path.is_file(), f"{module}: {path} does not exist"
    return path


def _check_gunicorn(args: list[str]) -> None:
    assert "gunicorn" in _dependency_names(), "gunicorn is not a dependency of the package"
    assert args[args.index("--worker-class") + 1] == "gthread"
    assert "--threads" in args
    assert "--workers" in args
    config = args[args.index("-c") + 1]
    assert config.startswith("python:"), config
    hooks = _check_python_module_file(config.removeprefix("python:"))
    assert "def child_exit" in hooks.read_text(encoding="utf-8")
    app_module, _, factory = args[-1].partition(":")
    assert app_module in pyproject()["tool"]["setuptools"]["py-modules"]
    assert factory == "create_app()"
    spec = importlib.util.find_spec(app_module)
    assert spec is not None
    assert spec.origin is not None
    assert "def create_app(" in Path(spec.origin).read_text(encoding="utf-8")


def check_image_command(argv: list[str]) -> None:
    """Whatever our image is asked to run exists in it: a console script of pyproject (and
    its subcommand), gunicorn with our modules, python -c code that compiles, sh -c of those."""
    assert argv, "empty command"
    head = argv[0]
    if head == "sh":
        assert argv[1] == "-c"
        words = shlex.split(argv[2])
        if words[0] == "exec":
            words = words[1:]
        check_image_command(words)
    elif head == "gunicorn":
        _check_gunicorn(argv)
    elif head == "python":
        assert argv[1] == "-c"
        compile(argv[2], "<healthcheck>", "exec")
    else:
        assert head in _console_scripts(), f"{head!r} is not a console script of pyproject"
        _check_click_path(argv[1:])


# --------------------------------------------------------------------------- Dockerfile


def test_the_image_is_multi_stage_and_runs_as_a_non_root_user(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    build, runtime = stages[0], stages[-1]
    assert build.name == "build"
    assert runtime.base.startswith("python:3.11")
    users = runtime.all("USER")
    assert users, "the runtime stage has no USER"
    assert users[-1].args not in ("root", "0", "0:0")
    useradd = " ".join(i.args for i in runtime.all("RUN") if "useradd" in i.args)
    assert "useradd --system --user-group --uid 10001" in useradd
    assert "app" in shlex.split(useradd)
    # the runtime stage takes the installed virtualenv, never the source packages
    froms = [copy_sources(i) for i in runtime.all("COPY")]
    assert any(origin == build.name and dest == "/opt/venv" for _s, dest, origin in froms)
    runtime_sources = {s for sources, _d, origin in froms if origin is None for s in sources}
    assert runtime_sources.isdisjoint(shipped_packages())


def test_the_build_stage_copies_every_package_and_installs_it_not_editable(
    stages: list[Stage],
) -> None:
    build = stages[0]
    copied = {s for i in build.all("COPY") for s in copy_sources(i)[0]}
    for package in shipped_packages():
        assert package in copied, f"{package} (pyproject include) is not COPY'd"
        assert (ROOT / package / "__init__.py").is_file()
    for module in pyproject()["tool"]["setuptools"]["py-modules"]:
        assert f"{module}.py" in copied
    for needed in ("pyproject.toml", "constraints.txt", pyproject()["project"]["readme"]):
        assert needed in copied
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
    installs = [i.args for i in build.all("RUN") if "pip install" in i.args]
    assert installs
    assert all(" -e " not in f" {a} " and "--editable" not in a for a in installs)
    assert any("-c constraints.txt" in a for a in installs)


def test_the_build_context_does_not_ignore_what_the_dockerfile_copies(
    stages: list[Stage],
) -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ".git" in patterns
    assert ".venv" in patterns
    assert "**/.env" in patterns
    for stage in stages:
        for instruction in stage.all("COPY"):
            sources, _dest, origin = copy_sources(instruction)
            if origin is not None:
                continue
            for source in sources:
                ignored = [p for p in patterns if fnmatch.fnmatch(source, p.lstrip("*/"))]
                assert not ignored, f"COPY {source} is excluded by .dockerignore {ignored}"


def test_the_image_has_a_healthcheck_and_a_gunicorn_command(stages: list[Stage]) -> None:
    runtime = stages[-1]
    healthchecks = runtime.all("HEALTHCHECK")
    assert len(healthchecks) == 1
    options, _, probe = healthchecks[0].args.partition(" CMD ")
    assert "--interval=" in options
    probe_argv = json.loads(probe)
    assert "/healthz" in probe_argv[-1]
    check_image_command(probe_argv)
    cmd = runtime.all("CMD")
    assert len(cmd) == 1
    argv = cmd[0].exec_form()
    assert argv is not None, "CMD should be in exec form"
    check_image_command(argv)
    # what the shell command reads has a default or is set by the image
    env = runtime.env()
    for name in env_references(argv[-1]):
        assert name in env or f"${{{name}:-" in argv[-1], f"CMD reads ${name} with no value"


def test_paths_the_image_sets_are_settings_and_live_where_the_app_user_writes(
    stages: list[Stage],
) -> None:
    runtime = stages[-1]
    env = runtime.env()
    known = config_variables()
    for name in ("MODELS_DIR", "RECORDINGS_DIR", "IMPORTS_DIR", "TTS_CACHE_DIR", "FLOWS_FILE"):
        assert name in known, f"{name} is not read by contactcenter/config.py"
    owned = "/var/lib/contactcenter"
    assert env["HOME"] == owned
    for name in ("MODELS_DIR", "RECORDINGS_DIR", "IMPORTS_DIR", "TTS_CACHE_DIR"):
        assert env[name].startswith(owned + "/"), name
    assert env["DATABASE_URL"] == f"sqlite:///{owned}/data/contactcenter.db"
    chown = " ".join(i.args for i in runtime.all("RUN"))
    assert f"chown -R app:app {owned}" in chown
    flows = [copy_sources(i) for i in runtime.all("COPY") if "call_flows.yaml" in i.args]
    assert flows == [(["call_flows.yaml"], env["FLOWS_FILE"], None)]


# --------------------------------------------------------------------------- compose.yaml


def test_compose_has_the_services_of_a_production_deployment(services: dict[str, Any]) -> None:
    assert set(services) == {"postgres", "redis", "migrate", "app", "worker", "prometheus"}
    for name in IMAGE_SERVICES:
        build = services[name]["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    assert services["migrate"]["command"] == ["contactcenter", "db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    assert services["worker"]["command"] == ["contactcenter", "worker"]
    assert services["worker"]["deploy"]["replicas"] >= 2
    assert "command" not in services["app"], "the app runs the image's gunicorn CMD"
    assert services["prometheus"]["profiles"] == ["monitoring"]
    for name, service in services.items():
        if name != "prometheus":
            assert "profiles" not in service, f"{name} must start with a plain `up`"


def test_redis_keeps_an_append_only_file_and_postgres_a_volume(services: dict[str, Any]) -> None:
    command = services["redis"]["command"]
    assert command[0] == "redis-server"
    assert command[command.index("--appendonly") + 1] == "yes"
    assert "redisdata:/data" in services["redis"]["volumes"]
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]


def test_start_up_order_waits_for_health_and_migrations(services: dict[str, Any]) -> None:
    for name in ("app", "worker"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name, service in services.items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on an unknown service {target}"
            if rule["condition"] == "service_healthy":
                check = services[target].get("healthcheck", {})
                assert check.get("test"), f"{name} waits for {target}, which has no probe"
                assert not check.get("disable"), f"{name} waits for {target}: probe disabled"


def test_every_long_running_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check is not None, f"{name} has no healthcheck"
        if name == "migrate":
            assert check == {"disable": True}
            continue
        assert check["test"][0] == "CMD"
        binary = check["test"][1]
        if name in IMAGE_SERVICES:
            check_image_command(check["test"][1:])
        else:
            assert binary in KNOWN_BINARIES[name], f"{name}: unknown executable {binary}"
    assert "/readyz" in services["app"]["healthcheck"]["test"][-1]


def test_the_app_serves_the_probed_and_scraped_routes() -> None:
    health = (ROOT / "web" / "health.py").read_text(encoding="utf-8")
    assert '@bp.get("/readyz")' in health
    assert '@bp.get("/metrics")' in health
    scrape = yaml.safe_load((DEPLOY / "prometheus.yml").read_text(encoding="utf-8"))
    (job,) = scrape["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["app"]
    assert sd["port"] == 8000


def test_every_command_of_our_image_exists(services: dict[str, Any]) -> None:
    for name in IMAGE_SERVICES:
        command = services[name].get("command")
        if command is not None:
            check_image_command(command)
    for name, binaries in KNOWN_BINARIES.items():
        command = services[name].get("command")
        if command and name == "redis":
            assert command[0] in binaries


def test_variables_set_for_our_image_are_ones_it_reads(
    services: dict[str, Any], stages: list[Stage]
) -> None:
    cmd = stages[-1].all("CMD")[0].exec_form()
    assert cmd is not None
    read_by_cmd = env_references(cmd[-1])
    known = config_variables() | read_by_cmd | set(NOT_CONFIG_VARIABLES)
    for name in IMAGE_SERVICES:
        environment = services[name]["environment"]
        assert isinstance(environment, dict)
        unknown = set(environment) - known
        assert not unknown, f"{name} sets variables nothing reads: {sorted(unknown)}"
        assert environment["TELEPHONY"] == "twilio"
        assert environment["DATABASE_URL"].startswith("postgresql+psycopg://")
        assert environment["DATABASE_URL"].endswith("@postgres:5432/contactcenter")
        assert environment["REDIS_URL"] == "redis://redis:6379/0"
    assert services["app"]["environment"]["PROMETHEUS_MULTIPROC_DIR"] == "/run/prometheus"
    (tmpfs,) = [v for v in services["app"]["volumes"] if isinstance(v, dict)]
    assert (tmpfs["type"], tmpfs["target"]) == ("tmpfs", "/run/prometheus")
    assert tmpfs["tmpfs"]["mode"] == 0o1777  # the app user writes there


def test_required_variables_are_in_the_example_env_file() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    required = {name for name in env_references(text) if f"${{{name}:?" in text}
    assert {"PUBLIC_BASE_URL", "TWILIO_AUTH_TOKEN", "POSTGRES_PASSWORD"} <= required
    example = (DEPLOY / ".env.example").read_text(encoding="utf-8")
    # set (NAME=…) or shown commented out (# NAME=…)
    defined = {
        line.removeprefix("# ").split("=", 1)[0]
        for line in example.splitlines()
        if re.match(r"(# )?[A-Z][A-Z0-9_]*=", line)
    }
    missing = required - defined
    assert not missing, f"deploy/.env.example does not mention {sorted(missing)}"
    optional = env_references(text) - required
    assert not (optional - defined), f"undocumented: {sorted(optional - defined)}"


def test_volumes_are_declared_and_mounted_where_the_image_keeps_state(
    services: dict[str, Any], stages: list[Stage]
) -> None:
    declared = set(compose()["volumes"])
    env = stages[-1].env()
    for name, service in services.items():
        for volume in service.get("volumes", []):
            if isinstance(volume, dict):
                continue
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                assert (COMPOSE.parent / source).is_file(), f"{name}: {source} missing"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
            assert target.startswith("/")
    for name in ("app", "worker"):
        mounts = {
            v.split(":")[1]: v.split(":")[0]
            for v in services[name]["volumes"]
            if isinstance(v, str)
        }
        assert mounts[env["MODELS_DIR"]] == "models"
        data = mounts[str(Path(env["IMPORTS_DIR"]).parent)]
        assert data == "data"
        assert str(Path(env["RECORDINGS_DIR"]).parent) in mounts


# --------------------------------------------------------------------------- the worker's probe


def test_the_worker_healthcheck_follows_rq_registration(
    services: dict[str, Any], redis_url: str, redis_client: Any
) -> None:
    """Run the worker's probe for real: healthy while an RQ worker of this host is registered,
    unhealthy once it is gone."""
    code = services["worker"]["healthcheck"]["test"][-1]
    env = {**os.environ, "REDIS_URL": redis_url}

    def probe() -> int:
        return subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode

    assert probe() == 1
    connection = redis.Redis.from_url(redis_url)
    try:
        worker = Worker([Queue("ivr", connection=connection)], connection=connection)
        worker.register_birth()
        assert probe() == 0
        worker.register_death()
        assert probe() == 1
    finally:
        connection.close()
