"""Hypothesis strategies and settings shared by the abuse suite: hostile strings (SQL and
HTML/JS injection, path traversal, control characters, huge, non-Latin), bounded so the
whole folder stays fast and deterministic."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st


def fuzz(max_examples: int) -> settings:
    """Hypothesis settings of the suite: deterministic (CI reproduces a failure), no
    deadline (no timing flakiness), function fixtures reused across examples."""
    return settings(
        max_examples=max_examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


SQL_INJECTIONS = (
    "' OR '1'='1",
    "'; DROP TABLE consumers; --",
    '" OR 1=1 --',
    "1; SELECT pg_sleep(0)",
    "%' UNION SELECT username, password_hash FROM users --",
    "\\'; --",
)
HTML_INJECTIONS = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)",
    "{{ 7*7 }}{% raw %}",
    "</textarea><svg onload=alert(1)>",
    "&lt;b&gt;&amp;",
)
TRAVERSALS = (
    "../../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "/etc/passwd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "....//....//etc/passwd",
    "a/../../b",
    "\x00.wav",
    "C:\\boot.ini",
)
ODD = (
    "",
    " ",
    "\x00",
    "\r\n\t",
    "-1",
    "0",
    "1e309",
    "NaN",
    "inf",
    "99999999999999999999999999999",
    "١٢٣",  # Arabic-Indic digits: isdigit() but not ASCII
    "²",  # a superscript: isdigit() yet int() refuses it
    "Ⅻ",
    "🙂" * 40,
    "Привет, мир",
    "\u202etxt.exe",
    "x" * 5000,
)
#: Every hostile literal above.
HOSTILE = SQL_INJECTIONS + HTML_INJECTIONS + TRAVERSALS + ODD

#: Any text a form or a URL can carry (no lone surrogates: they are not UTF-8).
any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)
hostile_text = st.one_of(st.sampled_from(HOSTILE), any_text)
