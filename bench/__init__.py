"""Benchmarks, run apart from the test suite: ``python -m bench [NAME ...]`` (``make bench``).

Every ``bench/bench_<name>.py`` module has a ``main(argv: list[str] | None = None) -> int``;
:mod:`bench.__main__` discovers and runs them. Figures are ratios against a baseline run side
by side on the same machine; results go to ``docs/benchmarks.md``.
"""
