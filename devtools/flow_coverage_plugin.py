"""A pytest plugin that records flow coverage of every simulated call the tests make.

::

    pytest -p devtools.flow_coverage_plugin --flow-coverage=var/flow-coverage \
        tests/ivr tests/telephony tests/devtools
    contactcenter simulate coverage --data var/flow-coverage

``--flow-coverage PATH`` sets ``CC_FLOW_COVERAGE`` for the test process (and for pytest-xdist
workers, which get the same options), so every :class:`~devtools.simulator.Simulator` appends
the steps its calls visited. The data of earlier runs at PATH is removed first unless
``--flow-coverage-append`` is given. A directory (existing, or PATH ending with ``/``) gets one
file per process; a file is shared under a lock.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devtools.flow_coverage import ENV_VAR, CoverageError, CoverageRecorder

_SAVED = pytest.StashKey[tuple[bool, str | None]]()
_TARGET = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--flow-coverage PATH`` and ``--flow-coverage-append``."""
    group = parser.getgroup("flow-coverage", "IVR flow coverage of simulated calls")
    group.addoption(
        "--flow-coverage",
        metavar="PATH",
        default=None,
        help="record the IVR steps of simulated calls to PATH (a .jsonl file or a directory/)",
    )
    group.addoption(
        "--flow-coverage-append",
        action="store_true",
        default=False,
        help="keep the coverage data already at PATH",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Export ``CC_FLOW_COVERAGE``; the main process clears old data unless appending."""
    raw = config.getoption("flow_coverage")
    if not raw:
        return
    path = Path(raw)
    if not path.is_absolute():
        path = config.invocation_params.dir / path
    target = str(path) + ("/" if str(raw).endswith(("/", os.sep)) else "")
    try:
        recorder = CoverageRecorder(target)
    except CoverageError as exc:
        raise pytest.UsageError(f"--flow-coverage: {exc}") from None
    is_worker = hasattr(config, "workerinput")
    if not is_worker and not config.getoption("flow_coverage_append"):
        recorder.clear()
    config.stash[_SAVED] = (ENV_VAR in os.environ, os.environ.get(ENV_VAR))
    config.stash[_TARGET] = target
    os.environ[ENV_VAR] = target


def pytest_unconfigure(config: pytest.Config) -> None:
    """Restore ``CC_FLOW_COVERAGE`` as it was."""
    saved = config.stash.get(_SAVED, None)
    if saved is None:
        return
    had, value = saved
    if had and value is not None:
        os.environ[ENV_VAR] = value
    else:
        os.environ.pop(ENV_VAR, None)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Say where the data went and how to see the report."""
    target = config.stash.get(_TARGET, None)
    if target is None or hasattr(config, "workerinput"):
        return
    terminalreporter.write_line(
        f"flow coverage data: {target} (report: contactcenter simulate coverage --data {target})"
    )
