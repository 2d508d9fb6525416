"""Campaign benchmark: targets/s through planner + dispatcher + dial jobs, and planner memory.

``python -m bench campaign [--consumers N] [--memory 10000,100000,1000000] [--json]``

1. Throughput: demo consumers (``devtools.demo``) in a fresh SQLite database and a private
   redis-server; a voice campaign over every debtor runs on the sandbox provider (status
   callbacks, AMD, TwiML) with RQ ``SimpleWorker`` bursts and virtual time, to the end.
   **Our cost** is the run's wall time less the sandbox's own emulation of Twilio's cloud
   (call lives, TwiML interpretation, signing; measured around ``run_until_idle``, with the
   time spent in our webhook handlers inside it added back). **The baseline** is the RQ
   jobs a target needs, as no-op jobs through the same worker class and Redis: one per dial
   job and one per status callback the campaign received. The ratio ours / baseline is
   what a target's whole work costs against the bare job machinery (issue 18: ≤ 2×).
2. Memory: a synthetic audience of N accounts (bulk-inserted: consumer, account, phone,
   one overdue charge) is planned into targets in a child process; its peak RSS growth
   shows the planner streams (keyset batches) instead of loading the audience.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import redis
from rq import Queue, SimpleWorker
from sqlalchemy import insert

from campaigns import service
from campaigns.definition import parse_definition
from campaigns.dispatcher import dispatch_once
from campaigns.planner import plan_targets
from campaigns.queueing import campaign_queue
from campaigns.status import subscribe
from contactcenter.config import Settings
from contactcenter.services import Services, install_services
from crm_store.db import Database
from crm_store.migrate import upgrade
from crm_store.models import Account, AccountPhone, Campaign, Charge, Consumer, PhoneNumber
from devtools.demo import seed_demo
from devtools.sandbox import SandboxProvider, Scenario, WebhookResponse
from telephony.status import StatusKind, parse_status_callback

ROOT = Path(__file__).resolve().parent.parent

START = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)
TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Say language="ru-RU">Долг.</Say></Response>'
)


def noop(target_id: int, attempt_no: int) -> str:
    """The baseline job: takes the same arguments as a dial job, does nothing."""
    return f"{target_id}-{attempt_no}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (run `make services`)")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    client.close()
    return proc, f"redis://127.0.0.1:{port}/0"


class _Transport:
    """Answers the sandbox's webhooks the way webhooks.py does for campaign calls, timing
    our side of each (``handler_s``) and counting the status callbacks."""

    def __init__(self, services: Any) -> None:
        self.services = services
        self.handler_s = 0.0
        self.callbacks = 0

    def request(
        self, method: str, url: str, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> Any:
        t0 = time.perf_counter()
        try:
            return self._answer(url, params)
        finally:
            self.handler_s += time.perf_counter() - t0

    def _answer(self, url: str, params: Mapping[str, str]) -> Any:
        parts = urlsplit(url)
        if parts.path == "/voice/outbound":
            return WebhookResponse(200, TWIML, {"content-type": "application/xml"})
        kind = {
            "/voice/status": StatusKind.CALL,
            "/voice/amd": StatusKind.AMD,
            "/sms/status": StatusKind.SMS,
        }.get(parts.path)
        if kind is None:
            return WebhookResponse(404, "")
        callback = parse_status_callback(kind, dict(params), dict(parse_qsl(parts.query)))
        self.services.status_hooks.publish(self.services, callback)
        self.callbacks += 1
        return WebhookResponse(204, "")


class QuietSimpleWorker(SimpleWorker):
    """SimpleWorker without the remote-command pub/sub thread (costly per burst)."""

    def subscribe(self) -> None:
        """Not needed for a local burst."""

    def unsubscribe(self) -> None:
        """Nothing to tear down."""


def throughput(consumers: int, workdir: Path, redis_url: str) -> dict[str, Any]:
    """Run one campaign to the end; then the same number of no-op jobs."""
    url = f"sqlite:///{workdir / 'bench.db'}"
    upgrade(url)
    settings = Settings(database_url=url, redis_url=redis_url, public_base_url="http://localhost")
    services = Services(settings)
    subscribe(services.status_hooks)
    seed_demo(services.db, consumers=consumers, seed=5, as_of=START.date())
    now = [START]
    services.clock = lambda: now[0]
    scenario = Scenario.from_dict(
        {"seed": 3, "calls": {"random": [{"weight": 70, "answer": "human"},
                                         {"weight": 15, "answer": "busy"},
                                         {"weight": 15, "answer": "no-answer"}]}}
    )  # fmt: skip
    transport = _Transport(services)
    provider = SandboxProvider(
        transport, settings.sandbox_auth_token, scenario=scenario, mode="inline"
    )
    services.telephony = provider
    install_services(services)
    worker_class = QuietSimpleWorker
    queue = campaign_queue(services)
    definition = parse_definition(
        {
            "name": "bench",
            "channel": "voice",
            "audience": {"min_debt": 1},
            "pacing": {"calls_per_second": 100, "max_concurrent": 1000,
                       "global_calls_per_second": 100, "global_max_concurrent": 1000},
            "retry": {"busy": {"retry_after": "30m", "max_attempts": 2},
                      "no_answer": {"retry_after": "2h", "max_attempts": 2}},
        }
    )  # fmt: skip
    cid = service.create_campaign(services, definition)
    started = time.perf_counter()
    plan = service.launch(services, cid, start=False)
    planned_s = time.perf_counter() - started
    jobs_run = 0
    sandbox_s = 0.0
    while True:
        result = dispatch_once(services, cid)
        if result.status != "running":
            break
        for _ in range(2):
            if queue.count:
                jobs_run += int(queue.count)
                worker_class([queue], connection=services.redis).work(
                    burst=True, logging_level="WARNING"
                )
            t0 = time.perf_counter()
            provider.run_until_idle()
            sandbox_s += time.perf_counter() - t0
        now[0] += dt.timedelta(minutes=5)
        if result.enqueued == 0 and result.next_due is not None and result.next_due > now[0]:
            now[0] = result.next_due
    elapsed = time.perf_counter() - started
    status = service.status(services, cid)

    ours_s = elapsed - planned_s - (sandbox_s - transport.handler_s)
    baseline_jobs = jobs_run + transport.callbacks
    baseline_queue = Queue("bench-noop", connection=services.redis)
    for n in range(baseline_jobs):
        baseline_queue.enqueue(
            "bench.bench_campaign.noop", n, 1, job_id=f"noop-{n}", unique=True, result_ttl=0
        )
    t0 = time.perf_counter()
    worker_class([baseline_queue], connection=services.redis).work(
        burst=True, logging_level="WARNING"
    )
    noop_s = time.perf_counter() - t0
    services.db.dispose()
    targets = plan.inserted
    return {
        "consumers": consumers,
        "targets": targets,
        "calls": len(provider.calls),
        "jobs": jobs_run,
        "plan_s": round(planned_s, 2),
        "campaign_s": round(elapsed, 2),
        "targets_per_s": round(targets / elapsed, 1),
        "jobs_per_s": round(jobs_run / elapsed, 1),
        "callbacks": transport.callbacks,
        "sandbox_emulation_s": round(sandbox_s - transport.handler_s, 2),
        "ours_s": round(ours_s, 2),
        "baseline_jobs": baseline_jobs,
        "noop_s": round(noop_s, 2),
        "ms_per_target_ours": round(ours_s / targets * 1000, 2) if targets else None,
        "ms_per_target_noop": round(noop_s / targets * 1000, 2) if targets else None,
        "ratio_ours_over_noop": round(ours_s / noop_s, 2) if noop_s else None,
        "final_states": {k: v for k, v in status.targets.items() if v},
    }


def _synthetic_audience(url: str, size: int) -> None:
    """Bulk-insert ``size`` debtors (consumer, account, phone, link, one overdue charge)."""
    zones = ["Europe/Kaliningrad", "Europe/Moscow", "Europe/Samara", "Asia/Yekaterinburg",
             "Asia/Omsk", "Asia/Novosibirsk", "Asia/Irkutsk", "Asia/Yakutsk",
             "Asia/Vladivostok", "Asia/Srednekolymsk", "Asia/Kamchatka"]  # fmt: skip
    db = Database(url)
    stamp = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    due = dt.date(2026, 10, 10)
    chunk = 20_000
    with db.engine.begin() as conn:
        for start in range(1, size + 1, chunk):
            ids = range(start, min(start + chunk, size + 1))
            conn.execute(insert(Consumer), [
                {"id": i, "full_name": f"Абонент {i}", "kind": "person", "created_at": stamp,
                 "updated_at": stamp} for i in ids])  # fmt: skip
            conn.execute(insert(Account), [
                {"id": i, "consumer_id": i, "number_raw": f"{i:09d}", "number": f"{i:09d}",
                 "timezone": zones[i % len(zones)], "region": "", "service_address": "",
                 "status": "active", "e_receipt": False, "created_at": stamp,
                 "updated_at": stamp} for i in ids])  # fmt: skip
            conn.execute(insert(PhoneNumber), [
                {"id": i, "e164": f"+7916{i:07d}", "source": "import", "verified": True,
                 "created_at": stamp} for i in ids])  # fmt: skip
            conn.execute(insert(AccountPhone), [
                {"account_id": i, "phone_id": i, "created_at": stamp} for i in ids])  # fmt: skip
            conn.execute(insert(Charge), [
                {"account_id": i, "period": dt.date(2026, 9, 1), "amount": 1500, "due_date": due,
                 "created_at": stamp} for i in ids])  # fmt: skip
    db.dispose()


def _proc_status_mib(field: str) -> float:
    """``VmRSS`` (current) or ``VmHWM`` (peak) of this process, in MiB (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(url: str) -> None:
    """In a fresh process: plan a campaign over the whole audience; print RSS figures."""
    db = Database(url)
    definition = parse_definition({"name": "m", "channel": "voice", "audience": {"min_debt": 1}})
    with db.transaction() as s:
        campaign = Campaign(name="m", channel="voice", definition=definition.to_json())
        s.add(campaign)
        s.flush()
        cid = campaign.id
    before = _proc_status_mib("VmRSS")
    t0 = time.perf_counter()
    result = plan_targets(db, cid, now=START, batch_size=1000)
    elapsed = time.perf_counter() - t0
    figures = {
        "planned": result.inserted,
        "rss_before_mib": round(before, 1),
        "rss_peak_mib": round(_proc_status_mib("VmHWM"), 1),
        "plan_s": round(elapsed, 1),
    }
    print(json.dumps(figures))


def memory(sizes: list[int], workdir: Path) -> list[dict[str, Any]]:
    """Planner peak RSS for each audience size (one child process each)."""
    rows = []
    for size in sizes:
        url = f"sqlite:///{workdir / f'audience-{size}.db'}"
        upgrade(url)
        t0 = time.perf_counter()
        _synthetic_audience(url, size)
        insert_s = time.perf_counter() - t0
        out = subprocess.run(
            [sys.executable, __file__, "--memory-child", url],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        data = json.loads(out.stdout.strip().splitlines()[-1])
        data.update({"audience": size, "insert_s": round(insert_s, 1)})
        data["rss_growth_mib"] = round(data["rss_peak_mib"] - data["rss_before_mib"], 1)
        rows.append(data)
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures (``--json`` for machine-readable)."""
    parser = argparse.ArgumentParser(prog="bench campaign", description=__doc__)
    parser.add_argument(
        "--consumers", type=int, default=3000, help="demo consumers (about 30%% are debtors)"
    )
    parser.add_argument("--memory", default="10000,100000", help="audience sizes, comma-separated")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child)
        return 0
    sizes = [int(x) for x in args.memory.split(",") if x.strip()]
    with tempfile.TemporaryDirectory(prefix="bench-campaign-") as tmp:
        workdir = Path(tmp)
        proc, redis_url = _redis(workdir)
        try:
            result = {
                "throughput": throughput(args.consumers, workdir, redis_url)
                if args.consumers
                else None,
                "memory": memory(sizes, workdir) if sizes else [],
                "load_average": os.getloadavg(),
                "cpus": os.cpu_count(),
            }
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        tp = result["throughput"]
        if tp:
            print(
                f"campaign: {tp['targets']} targets, {tp['calls']} calls, {tp['jobs']} dial"
                f" jobs, {tp['callbacks']} callbacks in {tp['campaign_s']} s (the sandbox's"
                f" emulation {tp['sandbox_emulation_s']} s, plan {tp['plan_s']} s)"
            )
            print(f"  ours {tp['ours_s']} s = {tp['ms_per_target_ours']} ms per target;"
                  f" {tp['baseline_jobs']} no-op jobs {tp['noop_s']} s ="
                  f" {tp['ms_per_target_noop']} ms per target;"
                  f" ratio ours/no-op {tp['ratio_ours_over_noop']}x (goal <= 2)")  # fmt: skip
        for row in result["memory"]:
            print(f"planner {row['audience']:>9,} accounts: {row['planned']:,} targets in"
                  f" {row['plan_s']} s, peak RSS {row['rss_peak_mib']} MiB"
                  f" (+{row['rss_growth_mib']} MiB while planning)")  # fmt: skip
        print(f"load average {result['load_average']}, {result['cpus']} CPUs")
    return 0


if __name__ == "__main__":
    if "--memory-child" in sys.argv:
        memory_child(sys.argv[sys.argv.index("--memory-child") + 1])
    else:
        sys.exit(main(sys.argv[1:]))
