"""The API's own description: ``/api/openapi.json`` and the browsable ``/api/docs``.

Both are public (no token) and generated from the code: the document is spectree's over the
declared operations (:func:`web.api_common.openapi_document`), and the page is rendered on
the server from that document — every operation by tag with its permission, parameters,
body and answers, then every schema with its fields. No script and nothing from a CDN, so
the page works offline and under a strict Content-Security-Policy.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, render_template_string
from spectree import Response as Responses

from web.api_common import api_blueprint, openapi_document, operation

bp = api_blueprint("api_docs", __name__, "/api")
TAGS = ["documentation"]
#: No scripts, no outside resources: the page is plain HTML with its own inline style.
DOCS_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
METHODS = ("get", "post", "put", "patch", "delete")


def schema_type(schema: dict[str, Any]) -> str:
    """A short human form of a JSON schema: ``integer``, ``Case``, ``list of Case``,
    ``"open" | "closed"``, ``string | null`` …"""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "enum" in schema:
        return " | ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in schema["enum"])
    if "const" in schema:
        return f'"{schema["const"]}"'
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(schema_type(s) for s in schema[key])
    kind = schema.get("type")
    if kind == "array":
        return f"list of {schema_type(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of {schema_type(schema['additionalProperties'])}"
    if isinstance(kind, list):
        return " | ".join(str(k) for k in kind)
    if kind is None:
        return "any"
    fmt = schema.get("format")
    return f"{kind} ({fmt})" if fmt else str(kind)


def inline(text: str) -> list[tuple[str, bool]]:
    """``text`` cut at its backticks: ``(segment, is_code)`` pairs (the page escapes both)."""
    return [(part, n % 2 == 1) for n, part in enumerate(text.split("`")) if part]


def _operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            body = op.get("requestBody", {}).get("content", {})
            entry = {
                "method": method.upper(),
                "path": path,
                "id": op.get("operationId", f"{method}{path}"),
                "summary": op.get("summary", ""),
                "description": op.get("description", ""),
                "permission": op.get("x-permission"),
                "public": op.get("security") == [],
                "parameters": [
                    {
                        "name": p["name"],
                        "in": p["in"],
                        "required": p.get("required", False),
                        "type": schema_type(p.get("schema", {})),
                        "description": p.get("description", ""),
                    }
                    for p in op.get("parameters", [])
                ],
                "body": [
                    {"type": kind, "schema": schema_type(content.get("schema", {}))}
                    for kind, content in body.items()
                ],
                "responses": [
                    {
                        "code": code,
                        "description": answer.get("description", ""),
                        "schema": ", ".join(
                            schema_type(c.get("schema", {}))
                            for c in answer.get("content", {}).values()
                        ),
                    }
                    for code, answer in sorted(op.get("responses", {}).items())
                ],
            }
            for tag in op.get("tags") or ["other"]:
                groups.setdefault(tag, []).append(entry)
    return [{"tag": tag, "operations": ops} for tag, ops in sorted(groups.items())]


def _schemas(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for name, schema in sorted(document.get("components", {}).get("schemas", {}).items()):
        required = set(schema.get("required", []))
        found.append(
            {
                "name": name,
                "description": schema.get("description", ""),
                "shape": "" if "properties" in schema else schema_type(schema),
                "fields": [
                    {
                        "name": field,
                        "type": schema_type(prop),
                        "required": field in required,
                        "description": prop.get("description", ""),
                    }
                    for field, prop in schema.get("properties", {}).items()
                ],
            }
        )
    return found


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ info.title }} — reference</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{margin:0 0 4px}h2{margin-top:36px;border-bottom:2px solid #d8dde6;padding-bottom:4px}
section.op{background:#fff;border:1px solid #d8dde6;border-radius:6px;margin:12px 0;padding:12px}
.m{display:inline-block;min-width:64px;font-weight:700;font-family:monospace}
.GET{color:#0b6b3a}.POST{color:#9a5b00}.PATCH{color:#5b3fa0}.DELETE{color:#a11}
code,.p{font-family:ui-monospace,monospace}.p{font-weight:600}
table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{text-align:left;border-top:1px solid #e6e9ef;padding:3px 6px;vertical-align:top}
.perm{background:#eef3ff;border-radius:4px;padding:1px 6px;font-size:13px}
.muted{color:#5b6575}nav a{margin-right:10px}
</style></head><body><main>
<h1>{{ info.title }}</h1>
<p class="muted">version {{ info.version }} · OpenAPI {{ openapi }} ·
<a href="{{ spec_url }}">openapi.json</a></p>
<p>{% for part, code in inline(info.description or "") %}{% if code %}<code>{{ part }}</code>
{%- else %}{{ part }}{% endif %}{% endfor %}</p>
<nav>{% for group in groups %}<a href="#tag-{{ group.tag }}">{{ group.tag }}</a>{% endfor %}
<a href="#schemas">schemas</a></nav>
{% for group in groups %}
<h2 id="tag-{{ group.tag }}">{{ group.tag }}</h2>
{% for op in group.operations %}
<section class="op" id="{{ op.id }}">
<div><span class="m {{ op.method }}">{{ op.method }}</span> <span class="p">{{ op.path }}</span>
{% if op.public %}<span class="perm">public</span>{% elif op.permission %}
<span class="perm">{{ op.permission }}</span>{% else %}<span class="perm">any user</span>{% endif %}
</div>
<p><b>{{ op.summary }}</b></p>
{% for para in op.description.split("\n\n") if para %}<p class="muted">
{%- for part, code in inline(para) %}{% if code %}<code>{{ part }}</code>{% else %}{{ part }}
{%- endif %}{% endfor %}</p>{% endfor %}
{% if op.parameters %}<table><tr><th>parameter</th><th>in</th><th>type</th><th></th></tr>
{% for p in op.parameters %}<tr><td><code>{{ p.name }}</code>{% if p.required %} *{% endif %}
</td><td>{{ p.in }}</td><td>{{ p.type }}</td><td>{{ p.description }}</td></tr>{% endfor %}
</table>{% endif %}
{% for b in op.body %}<p>body ({{ b.type }}): <code>{{ b.schema }}</code></p>{% endfor %}
<table><tr><th>answer</th><th>body</th><th></th></tr>
{% for r in op.responses %}<tr><td>{{ r.code }}</td><td><code>{{ r.schema }}</code></td>
<td>{{ r.description }}</td></tr>{% endfor %}</table>
</section>
{% endfor %}{% endfor %}
<h2 id="schemas">schemas</h2>
{% for s in schemas %}
<section class="op" id="schema-{{ s.name }}"><div class="p">{{ s.name }}</div>
{% if s.description %}<p class="muted">{{ s.description }}</p>{% endif %}
{% if s.shape %}<p><code>{{ s.shape }}</code></p>{% endif %}
{% if s.fields %}<table>{% for f in s.fields %}<tr><td><code>{{ f.name }}</code>
{% if f.required %} *{% endif %}</td><td>{{ f.type }}</td><td>{{ f.description }}</td></tr>
{% endfor %}</table>{% endif %}</section>
{% endfor %}
</main></body></html>
"""


@bp.get("/openapi.json")
@operation(
    permission=None,
    public=True,
    resp=Responses(HTTP_200=(None, "the OpenAPI 3.1 document (JSON)")),
    tags=TAGS,
)
def openapi_json() -> dict[str, Any]:
    """The OpenAPI 3.1 document of this API."""
    return openapi_document(current_app)


@bp.get("/docs")
@operation(
    permission=None,
    public=True,
    resp=Responses(HTTP_200=(None, "the reference as an HTML page")),
    tags=TAGS,
)
def api_reference() -> Response:
    """The API reference as a page, rendered from the OpenAPI document."""
    document = openapi_document(current_app)
    html = render_template_string(
        PAGE,
        info=document.get("info", {}),
        openapi=document.get("openapi", ""),
        spec_url="/api/openapi.json",
        groups=_operations(document),
        schemas=_schemas(document),
        inline=inline,
    )
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = DOCS_CSP
    return response
