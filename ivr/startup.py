"""What the IVR resolves once at start-up and every request then uses: :class:`IvrSetup`.

``create_app`` builds it with :func:`setup_ivr` (the validated flows, the speech model for
their language, the capture mode the call simulator may force) and keeps it next to the
:class:`~contactcenter.services.Services`; the voice runtime, the media-stream route and the
outage answers take it explicitly.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from contactcenter.config import ConfigError, Settings
from contactcenter.services import Services
from crm_store.audit import acting_as
from crm_store.db import Database
from crm_store.flow_audit import record_flow_versions
from ivr.actions import unimplemented_actions
from ivr.capture import setup_speech
from ivr.errors import FlowError
from ivr.operator_routing import OperatorRouting
from ivr.schema import FlowSet
from ivr.validate import load_flows
from ivr.voice_policy import CaptureMode
from speech import SpeechModel

log = logging.getLogger(__name__)

#: The audit log's name for what the prompts and defaults every flow shares.
SHARED_PARTS = "(defaults, prompts)"


@dataclass(frozen=True)
class IvrSetup:
    """The IVR of one process: its flows, its speech model and a forced capture mode.

    ``capture`` (``record`` or ``stream``) forces one capture mode for every voice step
    (None: each step's own).
    """

    flows: FlowSet
    speech: SpeechModel
    capture: CaptureMode | None = None
    operator: OperatorRouting = field(default_factory=OperatorRouting)
    """How operator transfers reach people (``OPERATOR_ROUTING``)."""

    @property
    def operator_queue(self) -> str:
        """Name of the operator queue (``defaults.operator_queue`` of the flows)."""
        return str(self.flows.defaults.operator_queue)


def setup_ivr(flowset: FlowSet, settings: Settings, capture: CaptureMode | None = None) -> IvrSetup:
    """The :class:`IvrSetup` of validated ``flowset``: resolves and checks the speech model
    for the flows' language (:func:`~ivr.capture.setup_speech`); the operator routing comes
    from the settings."""
    return IvrSetup(
        flows=flowset,
        speech=setup_speech(flowset, settings),
        capture=capture,
        operator=OperatorRouting.from_settings(settings),
    )


def load_flowset(path: str) -> FlowSet:
    """Load and validate the flow file the server runs; every problem is a
    :class:`~contactcenter.config.ConfigError` (variable ``FLOWS_FILE``) listing each error
    as ``FILE:LINE:COL``, and an action with no implementation is one too."""
    try:
        flowset = load_flows(path)
    except FlowError as exc:
        lines = [str(issue) for issue in exc.issues] or [str(exc)]
        raise ConfigError(
            "FLOWS_FILE", f"{path} is not a valid flow file:\n" + "\n".join(lines)
        ) from None
    missing = unimplemented_actions(flowset)
    if missing:
        raise ConfigError(
            "FLOWS_FILE",
            f"{path} uses actions with no implementation: {', '.join(missing)}",
        )
    return flowset


def flow_versions(flowset: FlowSet) -> dict[str, dict[str, Any]]:
    """A version of each flow of ``flowset`` for the audit log: the SHA-256 of its definition
    and its description and step count; the shared defaults and prompts as one more entry
    (:data:`SHARED_PARTS`)."""

    def digest(value: Any) -> str:
        canonical = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    versions: dict[str, dict[str, Any]] = {
        name: {
            "sha256": digest(flow.model_dump(mode="json")),
            "description": flow.description,
            "steps": len(flow.steps),
        }
        for name, flow in flowset.flows.items()
    }
    shared = flowset.model_dump(mode="json", include={"version", "defaults", "prompts"})
    versions[SHARED_PARTS] = {"sha256": digest(shared), "prompts": len(flowset.prompts)}
    return versions


def audit_flow_deploy(services: Services, flowset: FlowSet, path: str) -> list[str]:
    """Write to the audit log which flows the file at ``path`` changed since the last one
    that went live (:mod:`crm_store.flow_audit`), attributed to ``deploy``; returns their
    names. A database that cannot be written (not migrated yet, unreachable) does not stop
    the server: the change is audited at the next start."""
    # A connection of its own, closed at once: the app's pool stays empty until the first
    # request (a forking server's master holds none, an app built and dropped leaks none).
    database = Database(services.db.url)
    try:
        with acting_as("deploy", reason=f"FLOWS_FILE {path}"), database.transaction() as s:
            changed = record_flow_versions(s, flow_versions(flowset))
    except SQLAlchemyError as exc:
        log.warning("flow versions not audited (database): %s", type(exc).__name__)
        return []
    finally:
        database.dispose()
    if changed:
        log.info("flows changed since the last start: %s", ", ".join(changed))
    return changed
