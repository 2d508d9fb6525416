"""Flows (``flows.read``): each flow's graph and the flow file's validation status.

The flow file configured (``FLOWS_FILE``) is validated as it is on disk now, every problem
as ``FILE:LINE:COL`` (:mod:`ivr.flow_overview`). A graph is an SVG drawn by Graphviz's
``dot`` when it is installed (served by ``/console/flows/<name>.svg``, shown as an image),
otherwise the Mermaid text of the flow.
"""

from __future__ import annotations

from flask import current_app, render_template
from werkzeug.wrappers import Response

from ivr.flow_overview import FlowOverview, dot_available, flow_overview, render_svg
from web.common import current_services, ivr_of
from web.console import bp
from web.console.auth import error_page, login_required


def _overview() -> FlowOverview:
    return flow_overview(current_services().settings.flows_file, ivr_of(current_app).flows)


@bp.get("/flows", endpoint="flows")
@login_required("flows.read")
def flows_page() -> str:
    """Every flow with its graph, and the validation of the flow file."""
    return render_template("console/flows.html", overview=_overview(), dot=dot_available())


@bp.get("/flows/<name>.svg")
@login_required("flows.read")
def flow_svg(name: str) -> Response:
    """One flow's graph as SVG (404 without such a flow or without Graphviz)."""
    found = next((f for f in _overview().flows if f.name == name), None)
    if found is None:
        return error_page(404, "Такого сценария нет.")
    svg = render_svg(found.dot)
    if svg is None:
        return error_page(404, "Graphviz (dot) не установлен: граф показан текстом Mermaid.")
    response = Response(svg, mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "private, max-age=60"
    return response
