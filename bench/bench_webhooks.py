"""Webhook benchmark: IVR steps under simultaneous callers, against a bare signed endpoint.

``python -m bench webhooks [--callers 200] [--duration 120] [--saturation-callers 24]
[--saturation-duration 60] [--consumers 2000] [--database-url URL] [--soak MINUTES] [--json]``

Both servers run as the Dockerfile runs the app: gunicorn ``gthread``, 2 workers × 32
threads, on this machine, side by side in one run, driven by the same load client
(:mod:`bench.webhook_load`: signs like Twilio, follows the TwiML, presses keys with 2–5 s
between them):

* **ours**: ``webhooks:create_app()`` on a fresh database (SQLite by default) with the demo
  data of ``--consumers`` consumers, the sandbox telephony, a private redis-server and a
  ``contactcenter worker``. A call: identified by caller ID, confirms the address (1),
  hears the balance (2), goes back to the menu (1) and hangs up there; then its
  ``completed`` status callback.
* **baseline**: :mod:`bench.baseline_app`, the SDK's ``RequestValidator`` and a fixed
  ``<Gather>``, called the same way.

Two loads: ``--callers`` simultaneous callers with pauses (latency p50/p95/p99 per route
and overall) and ``--saturation-callers`` callers without pauses (requests per second).
The ratios printed are ours / baseline (p99) and baseline / ours (throughput).

``--soak MINUTES`` runs only our app, with a debt campaign launched on the demo data
(``docs/examples/debt_campaign.yaml``) and the worker dialing it, for that long: errors,
latency per route, and the resident memory of the app's and the worker's processes sampled
every 30 s (first, last, highest), to show nothing grows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench.webhook_load import LoadPlan, LoadResult, run_load, summary
from contactcenter.config import Settings
from crm_store.db import Database
from crm_store.models import AccountPhone, PhoneNumber

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
KEYS = ("1", "2", "1")
GUNICORN = ["--worker-class", "gthread", "--workers", "2", "--threads", "32", "--timeout", "60"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our local server
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer {url} within {timeout} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _rss_kib(root_pid: int) -> int:
    """Resident memory (KiB) of ``root_pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


@contextmanager
def _redis(workdir: Path) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(proc)


class Stack:
    """Our app (gunicorn + a worker) on a fresh database with demo data, and the baseline."""

    def __init__(self, workdir: Path, redis_url: str, database_url: str | None, consumers: int):
        self.workdir = workdir
        self.redis_url = redis_url
        self.database_url = database_url or f"sqlite:///{workdir / 'bench.db'}"
        self.consumers = consumers
        self.port = _free_port()
        self.base_port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"http://127.0.0.1:{self.base_port}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.app: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": redis_url,
            "TELEPHONY": "sandbox",
            "PUBLIC_BASE_URL": self.url,
            "LOG_LEVEL": "WARNING",
            "RECORDINGS_DIR": str(workdir / "recordings"),
            "TTS_CACHE_DIR": str(workdir / "tts"),
            "CONSOLE_SECRET_KEY": "b" * 48,
        }
        for name in ("SANDBOX_SCENARIO", "API_TOKEN", "FLOWS_FILE"):
            self.env.pop(name, None)

    def cli(self, *args: str) -> str:
        """Run ``contactcenter ARGS`` against the stack's database; its output."""
        done = subprocess.run(
            [str(BIN / "contactcenter"), *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"contactcenter {' '.join(args)}: {done.stderr[-2000:]}")
        return done.stdout

    def prepare(self) -> list[str]:
        """Migrate, seed the demo data; the phones of its accounts (the callers)."""
        self.cli("db", "upgrade")
        self.cli("demo", "seed", "--consumers", str(self.consumers), "--seed", "1")
        db = Database(self.database_url)
        try:
            with db.session() as s:
                phones = s.scalars(
                    select(PhoneNumber.e164)
                    .join(AccountPhone, AccountPhone.phone_id == PhoneNumber.id)
                    .distinct()
                    .order_by(PhoneNumber.e164)
                ).all()
        finally:
            db.dispose()
        return list(phones)

    def start(self) -> None:
        """Start our app, its worker and the baseline; wait until they answer."""
        log = (self.workdir / "app.log").open("ab")
        self.app = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "-c",
                "python:contactcenter.gunicorn_conf",
                *GUNICORN,
                "--bind",
                f"127.0.0.1:{self.port}",
                "webhooks:create_app()",
            ],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
        self.worker = subprocess.Popen(
            [str(BIN / "contactcenter"), "worker"],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
        base_env = {
            **self.env,
            "BASELINE_AUTH_TOKEN": Settings().sandbox_auth_token,
            "PUBLIC_BASE_URL": self.base_url,
        }
        baseline = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                *GUNICORN,
                "--bind",
                f"127.0.0.1:{self.base_port}",
                "bench.baseline_app:create_app()",
            ],
            env=base_env,
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
        self.procs = [self.app, self.worker, baseline]
        _wait_http(self.url + "/healthz", self.app, "the app")
        _wait_http_post_ok(self.base_url, baseline)

    def stop(self) -> None:
        """Stop every process started."""
        for proc in self.procs:
            _stop(proc)


def _wait_http_post_ok(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the baseline exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the baseline did not start")


def _figures(result: LoadResult) -> dict[str, Any]:
    return {
        "calls": result.calls,
        "requests": len(result.samples),
        "errors": result.error_count(),
        "error_examples": sorted(set(result.errors))[:10],
        "requests_per_s": round(result.throughput(), 1),
        "all": {k: round(v, 2) for k, v in summary(result.latencies()).items()},
        "routes": {
            route: {k: round(v, 2) for k, v in summary(result.latencies(route)).items()}
            for route in result.routes()
        },
    }


def _load(
    url: str,
    token: str,
    phones: list[str],
    callers: int,
    duration: float,
    pause: tuple[float, float],
) -> dict[str, Any]:
    plan = LoadPlan(
        base_url=url,
        auth_token=token,
        callers=phones,
        keys=KEYS,
        pause_s=pause,
        concurrency=callers,
        duration_s=duration,
    )
    return _figures(run_load(plan, progress=lambda line: print(f"  … {line}", flush=True)))


def _loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def compare(stack: Stack, phones: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """The paced and the saturation loads against ours and the baseline."""
    token = Settings().sandbox_auth_token
    out: dict[str, Any] = {"cpus": os.cpu_count(), "load_average_before": _loadavg()}
    for name, callers, duration, pause in (
        ("paced", args.callers, args.duration, (2.0, 5.0)),
        ("saturation", args.saturation_callers, args.saturation_duration, (0.0, 0.0)),
    ):
        print(f"{name}: baseline, {callers} callers, {duration} s", flush=True)
        base = _load(stack.base_url, token, phones, callers, duration, pause)
        print(f"{name}: ours, {callers} callers, {duration} s", flush=True)
        ours = _load(stack.url, token, phones, callers, duration, pause)
        out[name] = {"ours": ours, "baseline": base}
    paced, sat = out["paced"], out["saturation"]
    out["ratio_p99"] = round(paced["ours"]["all"]["p99"] / paced["baseline"]["all"]["p99"], 2)
    out["ratio_p95"] = round(paced["ours"]["all"]["p95"] / paced["baseline"]["all"]["p95"], 2)
    out["throughput_fraction"] = round(
        sat["ours"]["requests_per_s"] / sat["baseline"]["requests_per_s"], 3
    )
    out["load_average_after"] = _loadavg()
    return out


def soak(stack: Stack, phones: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Our app alone for ``--soak`` minutes with a campaign running; memory sampled."""
    created = stack.cli(
        "campaign", "create", str(ROOT / "docs" / "examples" / "debt_campaign.yaml")
    )
    campaign_id = next(w for w in created.replace(":", " ").split() if w.isdigit())
    stack.cli("campaign", "launch", campaign_id)
    if stack.app is None or stack.worker is None:
        raise RuntimeError("the stack is not started")
    app, worker = stack.app, stack.worker
    samples: list[tuple[float, int, int]] = []
    done = threading.Event()

    def sample() -> None:
        started = time.monotonic()
        while not done.is_set():
            samples.append(
                (
                    round(time.monotonic() - started),
                    _rss_kib(app.pid),
                    _rss_kib(worker.pid),
                )
            )
            done.wait(30)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    figures = _load(
        stack.url, Settings().sandbox_auth_token, phones, args.callers, args.soak * 60, (2.0, 5.0)
    )
    done.set()
    sampler.join()
    status = stack.cli("campaign", "status", campaign_id)
    app_rss = [a for _, a, _ in samples]
    worker_rss = [w for _, _, w in samples]
    return {
        "minutes": args.soak,
        "callers": args.callers,
        "load": figures,
        "campaign_status": status.strip().splitlines()[:12],
        "memory_kib": {
            "app_first": app_rss[0],
            "app_last": app_rss[-1],
            "app_max": max(app_rss),
            "worker_first": worker_rss[0],
            "worker_last": worker_rss[-1],
            "worker_max": max(worker_rss),
            "samples": samples,
        },
        "load_average_end": _loadavg(),
    }


def _table(title: str, figures: dict[str, Any]) -> None:
    print(
        f"\n{title}: {figures['calls']} calls, {figures['requests']} requests, "
        f"{figures['errors']} errors, {figures['requests_per_s']} req/s"
    )
    print(f"  {'route':<22}{'n':>8}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}")
    rows = [("(all)", figures["all"]), *figures["routes"].items()]
    for route, s in rows:
        print(f"  {route:<22}{int(s['n']):>8}{s['p50']:>10.1f}{s['p95']:>10.1f}{s['p99']:>10.1f}")


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--callers", type=int, default=200)
    parser.add_argument("--duration", type=float, default=120)
    parser.add_argument("--saturation-callers", type=int, default=24)
    parser.add_argument("--saturation-duration", type=float, default=60)
    parser.add_argument("--consumers", type=int, default=2000)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--soak", type=float, default=0, help="minutes of the soak run (ours only)")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.callers, args.duration = min(args.callers, 10), min(args.duration, 5)
        args.saturation_callers, args.saturation_duration = 2, min(args.saturation_duration, 3)
        args.consumers = min(args.consumers, 50)
        args.soak = min(args.soak, 0.1) if args.soak else 0
    if shutil.which("redis-server") is None:
        print("redis-server is not installed", file=sys.stderr)
        return 2
    with (
        tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp,
        _redis(Path(tmp)) as redis_url,
    ):
        stack = Stack(Path(tmp), redis_url, args.database_url, args.consumers)
        phones = stack.prepare()
        stack.start()
        try:
            result = soak(stack, phones, args) if args.soak else compare(stack, phones, args)
        finally:
            stack.stop()
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    if args.soak:
        _table(f"soak, {args.soak} min, {args.callers} callers, campaign running", result["load"])
        m = result["memory_kib"]
        print(
            f"memory (KiB): app {m['app_first']} → {m['app_last']} (max {m['app_max']}); "
            f"worker {m['worker_first']} → {m['worker_last']} (max {m['worker_max']})"
        )
        print("campaign:", " | ".join(result["campaign_status"]))
        return 1 if result["load"]["errors"] else 0
    for name in ("paced", "saturation"):
        _table(f"{name}, baseline", result[name]["baseline"])
        _table(f"{name}, ours", result[name]["ours"])
    print(f"\nratio p99 ours/baseline (paced): {result['ratio_p99']} (p95 {result['ratio_p95']})")
    print(f"saturation throughput ours/baseline: {result['throughput_fraction']}")
    print(
        f"cpus {result['cpus']}, load average "
        f"{result['load_average_before']} → {result['load_average_after']}"
    )
    errors = result["paced"]["ours"]["errors"] + result["saturation"]["ours"]["errors"]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
