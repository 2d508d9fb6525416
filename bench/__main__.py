"""Run the benchmarks: ``python -m bench [NAME ...] [OPTIONS]``.

Without a name every ``bench/bench_*.py`` module runs, in name order. ``NAME`` is a module
name without the ``bench_`` prefix (``python -m bench speech``); several may be given.
Everything from the first option on (``--quick``, ...) is handed to each benchmark's
``main(argv)``. ``python -m bench --list`` shows what exists.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

PREFIX = "bench_"
PACKAGE_DIR = Path(__file__).resolve().parent


def discover(directory: Path = PACKAGE_DIR) -> list[str]:
    """Names (without the ``bench_`` prefix) of the benchmark modules, sorted."""
    return sorted(
        info.name.removeprefix(PREFIX)
        for info in pkgutil.iter_modules([str(directory)])
        if info.name.startswith(PREFIX) and not info.ispkg
    )


def split_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(benchmark names, options for the benchmarks): names are the leading non-options."""
    names: list[str] = []
    rest = list(argv)
    while rest and not rest[0].startswith("-"):
        names.append(rest.pop(0).removeprefix(PREFIX))
    return names, rest


def _call_main(module_name: str, main_fn: Callable[..., Any], options: list[str]) -> int:
    """Call ``main(options)``; a ``main()`` without parameters sees them in ``sys.argv``."""
    try:
        takes_argv = bool(inspect.signature(main_fn).parameters)
    except (TypeError, ValueError):
        takes_argv = True
    saved = sys.argv
    sys.argv = [module_name, *options]
    try:
        result = main_fn(options) if takes_argv else main_fn()
    except SystemExit as exc:  # argparse exits on --help or bad options
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        sys.argv = saved
    return result if isinstance(result, int) else 0


def run(names: Sequence[str], options: list[str]) -> int:
    """Run the named benchmarks (all when ``names`` is empty); 0 when all succeeded."""
    available = discover()
    if options[:1] == ["--list"]:
        print("\n".join(available))
        return 0
    unknown = [n for n in names if n not in available]
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}",
            file=sys.stderr,
        )
        return 2
    failed: list[str] = []
    for name in names or available:
        module_name = f"bench.{PREFIX}{name}"
        print(f"== {module_name}", flush=True)
        module = importlib.import_module(module_name)
        main_fn = getattr(module, "main", None)
        if not callable(main_fn):
            print(f"{module_name} has no main(); skipped", file=sys.stderr)
            failed.append(name)
            continue
        try:
            code = _call_main(module_name, main_fn, options)
        except Exception:  # noqa: BLE001 - one broken benchmark must not stop the others
            traceback.print_exc()
            code = 1
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench``."""
    names, options = split_args(sys.argv[1:] if argv is None else argv)
    return run(names, options)


if __name__ == "__main__":
    sys.exit(main())
