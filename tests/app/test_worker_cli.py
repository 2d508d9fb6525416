"""``contactcenter worker``: jobs run in the worker's own process unless ``--fork``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rq import Queue

from contactcenter.cli import main
from contactcenter.config import Settings

QUEUE = "worker-cli-test"


def note_pid(path: str) -> None:
    """The job: write the id of the process that runs it."""
    Path(path).write_text(str(os.getpid()))


@pytest.mark.parametrize(("options", "in_process"), [([], True), (["--fork"], False)])
def test_jobs_run_in_the_worker_process_unless_forked(
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    redis_client: Any,
    tmp_path: Path,
    options: list[str],
    in_process: bool,
) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    out = tmp_path / "pid"
    Queue(QUEUE, connection=redis_client).enqueue(note_pid, str(out))
    result = CliRunner().invoke(main, ["worker", "--burst", "--queue", QUEUE, *options])
    assert result.exit_code == 0, result.output
    assert out.read_text() != ""
    assert (int(out.read_text()) == os.getpid()) is in_process
