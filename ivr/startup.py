"""What the IVR resolves once at start-up and every request then uses: :class:`IvrSetup`.

``create_app`` builds it with :func:`setup_ivr` (the validated flows, the speech model for
their language, the capture mode the call simulator may force) and keeps it next to the
:class:`~contactcenter.services.Services`; the voice runtime, the media-stream route and the
outage answers take it explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from contactcenter.config import ConfigError, Settings
from ivr.actions import unimplemented_actions
from ivr.capture import setup_speech
from ivr.errors import FlowError
from ivr.operator_routing import OperatorRouting
from ivr.schema import FlowSet
from ivr.validate import load_flows
from ivr.voice_policy import CaptureMode
from speech import SpeechModel


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
