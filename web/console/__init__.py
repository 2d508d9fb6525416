"""The web console: supervisors', operators', auditors' and admins' pages under ``/console``.

One blueprint, :data:`bp`; every console module registers its views on it and is imported
at the bottom of this file (the marked list), so importing the package registers them all.
:func:`init_console` installs the console on an app made by ``webhooks.create_app``: the
server-side sessions (:mod:`web.console.sessions`), the cookie signing key, CSRF checks and
security headers (:mod:`web.console.auth`), and the blueprint.

Templates live in ``templates/console/`` (``base.html`` gives the layout: blocks ``title``,
``content``, ``scripts``); static files in ``static/`` (vendored libraries in
``static/vendor/``, see ``scripts/vendor_assets.sh``). See ``docs/console.md``.
"""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

#: The navigation: (label, endpoint, permission). An entry shows when the user's scope has
#: the permission and the endpoint exists; the first one the user may open is where a login
#: lands when no page was asked for.
NAV: tuple[tuple[str, str, str], ...] = (
    ("Сводка", "console.dashboard", "dashboard.read"),
    ("Кампании", "console.campaigns", "campaigns.read"),
    ("Потребители", "console.consumers", "consumers.read"),
    ("Рабочее место", "console.desk", "consumers.write"),
    ("Сценарии", "console.flows", "flows.read"),
    ("Журнал аудита", "console.audit", "audit.read"),
    ("Пользователи", "console.users", "users.admin"),
)


def init_console(app: Flask) -> None:
    """Install the console on ``app`` (sessions, key, CSRF, headers) and register :data:`bp`."""
    web.console.auth.install(app)
    app.register_blueprint(bp)


# ---- console modules: each registers its views on `bp` when imported. One plain `import`
# a line (so tools keep the lines apart); add yours in alphabetical order. ----
import web.console.audit  # noqa: E402  (the audit log)
import web.console.auth  # noqa: E402  (login, logout, password, CSRF, security headers)
import web.console.campaigns  # noqa: E402  (campaigns: list, create, progress, report)
import web.console.consumers  # noqa: E402  (consumer 360, search, recordings, contacts)
import web.console.dashboard  # noqa: E402  (the dashboard)
import web.console.flows  # noqa: E402  (flows: graphs and validation)
import web.console.labels  # noqa: E402  (Russian names of stored vocabularies)
import web.console.operator  # noqa: E402  (the operator desk)
import web.console.users  # noqa: E402  (users admin)

# ---- end of console modules ----
