"""The dashboard (permission ``dashboard.read``): calls in the IVR now, today's calls by
outcome, IVR containment, readings by voice and keypad, recognition confidence, SMS delivery,
running campaigns — for the user's regions (:mod:`crm_store.console_dashboard`).

The page refreshes itself: the figures are an htmx fragment polled every
:data:`REFRESH_S` seconds, the charts (Chart.js, ``static/dashboard.js``) re-read
``/console/dashboard/data.json`` as often.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, render_template
from werkzeug.wrappers import Response

from crm_store.console_dashboard import CONFIDENCE_BUCKETS, Dashboard, dashboard
from web.common import current_services
from web.console import bp
from web.console.auth import current_scope, login_required
from web.console.labels import label

#: Seconds between two refreshes of the figures and charts.
REFRESH_S = 10


def _board() -> Dashboard:
    services = current_services()
    with services.db.session() as session:
        return dashboard(session, current_scope(), services.clock())


def chart_data(board: Dashboard) -> dict[str, Any]:
    """The charts' data: labels in Russian, values in the same order."""
    outcomes = board.calls_by_outcome
    containment = board.containment
    return {
        "as_of": board.as_of.isoformat(),
        "outcomes": {
            "labels": [label(k, "outcome") for k in outcomes],
            "values": list(outcomes.values()),
        },
        "containment": {
            "labels": ["завершены в меню", "положили трубку в меню", "переданы людям"],
            "values": [containment.completed, containment.hung_up, containment.transferred],
        },
        "readings": {
            "labels": [label(k, "reading_source") for k in board.readings],
            "values": list(board.readings.values()),
        },
        "confidence": {
            "labels": [
                f"{n / CONFIDENCE_BUCKETS:.1f}–{(n + 1) / CONFIDENCE_BUCKETS:.1f}"
                for n in range(CONFIDENCE_BUCKETS)
            ],
            "values": board.confidence,
        },
        "sms": {
            "labels": ["доставлено", "не доставлено", "в пути"],
            "values": [board.sms["delivered"], board.sms["failed"], board.sms["pending"]],
        },
    }


@bp.get("/dashboard", endpoint="dashboard")
@login_required("dashboard.read")
def dashboard_page() -> str:
    """The dashboard page."""
    return render_template("console/dashboard.html", board=_board(), refresh_s=REFRESH_S)


@bp.get("/dashboard/figures")
@login_required("dashboard.read")
def dashboard_figures() -> str:
    """The figures (an htmx fragment, polled)."""
    return render_template("console/_dashboard_figures.html", board=_board(), refresh_s=REFRESH_S)


@bp.get("/dashboard/data.json")
@login_required("dashboard.read")
def dashboard_data() -> Response:
    """The charts' data (polled by ``dashboard.js``)."""
    return jsonify(chart_data(_board()))
