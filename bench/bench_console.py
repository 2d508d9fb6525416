"""Benchmark: a heavy consumer's console pages and API answers against the bare SQL.

The "Speed" goal of the console: pages and API answers for a consumer with 10,000
interactions in a database of 1,000,000 answer with a p95 under 3x the bare indexed SQL for
the same rows.

What it does:

* creates a fresh PostgreSQL database (``--admin-url`` / ``BENCH_PG_ADMIN_URL``), migrates it
  and seeds a CRM server-side (``generate_series``, ``setseed``: deterministic): consumers
  with an account, a phone, a meter, a year of readings, charges and payments each, over six
  regions; ``--interactions`` interactions in all (calls with their IVR steps and some
  transcripts, SMS, e-mails; some without an account, some from unknown callers), cases,
  campaigns with targets and attempts, consents, do-not-contact entries and their audit
  rows. One consumer (id 1) has ``--consumer-interactions`` of them over three years, two
  accounts in Москва and one in Тверь, five years of readings, charges and payments, cases,
  campaign targets, operators' notes, SMS matched by phone only, two call recordings;
* builds the real app (``webhooks.create_app``) on that database and logs a region-scoped
  operator (Москва; ``--all-regions``: a user of every region) into the console and the
  API with the Flask test client;
* for every route (the consumer 360 page, its timeline's next and a deep page, the desk
  page, the API's consumer, its interactions first and deep page, the consumer search by
  account number, phone and name) first checks that the app and the bare SQL show the
  same rows, then times both ``--repeat`` times, interleaved: p50 and p95;
* runs ``EXPLAIN`` on every statement the app sent for the route and fails when the
  interactions table is read by a sequential scan; fails when a route's p95 exceeds
  ``--max-ratio`` (3) times the bare p95.

The app side is the whole request through Flask's test client: session or token check,
scope, every query, the template or JSON with its validation. The bare side is the
hand-written SQL (``text()`` through the same engine and psycopg) fetching the rows the
page or answer shows, every statement it needs summed, nothing rendered.

Run (a PostgreSQL server with pg_trgm, a Redis server):

    .venv/bin/python -m bench console                      # 1,000,000 / 10,000
    .venv/bin/python -m bench console --quick --interactions 20000 --consumer-interactions 2000
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import re
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, event, text
from werkzeug.test import TestResponse

from bench.bench_interactions import DEFAULT_ADMIN_URL, fresh_database, secondary_indexes
from contactcenter.config import Settings
from contactcenter.gunicorn_conf import freeze_startup_objects
from crm_store import interactions as history
from crm_store import paging
from crm_store.db import Database, make_engine
from crm_store.users import create_user, issue_api_token
from web.console.consumers import TIMELINE_PAGE
from webhooks import create_app, services_of

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
T_START = datetime(2020, 1, 1, tzinfo=UTC)
HOME, OTHER = "Москва", "Тверь"
REGIONS = (HOME, OTHER, "Тула", "Калуга", "Рязань", "Владимир")
TARGET = 1
TARGET_NAME = "Незабудкина Алевтина Тимофеевна"
USERNAME = "bench_operator"
API_PAGE = 50
SURNAMES = (
    "Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов",
    "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров",
    "Павлов", "Козлов", "Степанов", "Николаев", "Орлов", "Андреев", "Макаров", "Никитин",
    "Захаров", "Зайцев", "Соловьёв", "Борисов", "Яковлев", "Григорьев",
)  # fmt: skip
FIRST_NAMES = (
    "Александр", "Сергей", "Дмитрий", "Андрей", "Алексей", "Максим", "Евгений", "Иван",
    "Михаил", "Артём", "Елена", "Ольга", "Наталья", "Татьяна", "Ирина", "Анна", "Мария",
    "Светлана", "Юлия", "Екатерина",
)  # fmt: skip
PATRONYMICS = (
    "Александрович", "Сергеевич", "Дмитриевич", "Андреевич", "Алексеевич", "Иванович",
    "Михайлович", "Петрович", "Николаевна", "Владимировна", "Викторовна", "Юрьевна",
)  # fmt: skip
WORDS = (
    "показания", "счётчик", "долг", "оплата", "звонок", "абонент", "напоминание", "тариф",
    "квитанция", "пени", "адрес", "оператор", "перезвонить", "согласие", "платёж", "срок",
)  # fmt: skip
CHANNELS = ("voice",) * 5 + ("sms",) * 4 + ("email",)
OUTCOMES = ("human", "no_answer", "busy", "voicemail", "promise_to_pay", "reading_submitted")
STEPS = ("menu", "account", "reading")
CASE_TYPES = ("callback", "already_paid", "meter_service", "complaint", "reading_dispute")

# Seeding: one statement per item, in this order, within one transaction.
SEED_SQL: tuple[str, ...] = (
    """
INSERT INTO consumers (id, kind, full_name, email, created_at, updated_at)
SELECT g, 'person',
       CASE WHEN g = 1 THEN :target_name
            ELSE (CAST(:surnames AS text[]))[1 + floor(random() * :n_surnames)::int] || ' '
              || (CAST(:first_names AS text[]))[1 + floor(random() * :n_first_names)::int]
              || ' '
              || (CAST(:patronymics AS text[]))[1 + floor(random() * :n_patronymics)::int]
       END,
       CASE WHEN g = 1 OR random() < 0.3 THEN 'c' || g || '@example.ru' END,
       :t_start, :t_start
FROM generate_series(1, :consumers) g
""",
    # Accounts 1-3 are the target's (1, 2 at home, 3 in the other region); account g > 3
    # is consumer g - 2's.
    """
INSERT INTO accounts (id, consumer_id, number_raw, number, ivr_code, service_address, region,
                      timezone, status, e_receipt, created_at, updated_at)
SELECT g, CASE WHEN g <= 3 THEN 1 ELSE g - 2 END,
       '50-' || lpad(g::text, 8, '0'), '50' || lpad(g::text, 8, '0'),
       '9' || lpad(g::text, 7, '0'), r.region || ', ул. Ленина, д. ' || (1 + g % 150),
       r.region, 'Europe/Moscow', 'active', g % 4 = 0, :t_start, :t_start
FROM generate_series(1, :accounts) g
CROSS JOIN LATERAL (
  SELECT CASE WHEN g <= 2 THEN CAST(:home AS text) WHEN g = 3 THEN CAST(:other AS text)
              ELSE (CAST(:regions AS text[]))[1 + g % :n_regions] END AS region
) r
""",
    """
INSERT INTO phone_numbers (id, e164, source, verified, created_at)
SELECT g, '+7916' || lpad(g::text, 7, '0'), 'import', g <= 3 OR g % 3 = 0, :t_start
FROM generate_series(1, :accounts) g
""",
    """
INSERT INTO account_phones (account_id, phone_id, created_at)
SELECT g, g, :t_start FROM generate_series(1, :accounts) g
""",
    """
INSERT INTO meters (id, account_id, serial, capacity, zones, remote_read, created_at)
SELECT g, g, 'СЧ-' || lpad(g::text, 8, '0'), 6,
       CAST(CASE WHEN g <= 3 THEN '["день", "ночь"]' ELSE '["день"]' END AS jsonb), false,
       :t_start
FROM generate_series(1, :accounts) g
""",
    """
INSERT INTO meter_readings (meter_id, zone, value, period, source, anomaly, override, rollover,
                            consumption, submitted_at)
SELECT m.id, z.zone, 200000 - s.n * 150 - z.zn, p.period, 'import', false, false, false, 150,
       p.period + interval '24 days'
FROM meters m
CROSS JOIN LATERAL jsonb_array_elements_text(m.zones) WITH ORDINALITY z(zone, zn)
CROSS JOIN LATERAL generate_series(
  1, CASE WHEN m.account_id <= 3 THEN :target_months ELSE :months END) s(n)
CROSS JOIN LATERAL (
  SELECT CAST(date_trunc('month', CAST(:t_end AS timestamptz)) - s.n * interval '1 month'
              AS date) AS period
) p
""",
    """
INSERT INTO charges (account_id, period, amount, due_date, source, created_at)
SELECT a.id, p.period, round(CAST(400 + random() * 2600 AS numeric), 2), p.period + 40,
       'billing', :t_start
FROM accounts a
CROSS JOIN LATERAL generate_series(
  1, CASE WHEN a.id <= 3 THEN :target_months ELSE :months END) s(n)
CROSS JOIN LATERAL (
  SELECT CAST(date_trunc('month', CAST(:t_end AS timestamptz)) - s.n * interval '1 month'
              AS date) AS period
) p
""",
    """
INSERT INTO payments (account_id, amount, paid_on, channel, created_at, agent)
SELECT c.account_id, c.amount, c.period + 35,
       (ARRAY['bank', 'card', 'sbp', 'cash'])[1 + floor(random() * 4)::int], :t_start,
       CASE WHEN random() < 0.5 THEN 'ПАО Сбербанк' END
FROM charges c WHERE random() < 0.85
""",
    """
INSERT INTO campaigns (id, name, channel, status, definition, created_by, created_at)
SELECT g, 'Напоминание о долге ' || g, 'voice_then_sms', 'completed',
       CAST('{"audience": {"min_debt": 100}}' AS jsonb), 'bench', :t_start
FROM generate_series(1, 3) g
""",
    """
INSERT INTO campaign_targets (campaign_id, account_id, phone, timezone, state, attempts,
                              last_outcome, control_group, created_at, updated_at)
SELECT c, a, '+7916' || lpad(a::text, 7, '0'), 'Europe/Moscow', 'done', 2, 'no_answer', false,
       :t_start, :t_start
FROM generate_series(1, 3) c CROSS JOIN generate_series(1, :accounts) a
WHERE a <= 2 OR a % 10 = c
""",
    """
INSERT INTO contact_attempts (campaign_id, target_id, attempt_no, channel, idempotency_key,
                              status, outcome, created_at, updated_at, last_sequence)
SELECT t.campaign_id, t.id, s.n, CASE WHEN s.n = 1 THEN 'voice' ELSE 'sms' END,
       'bench:' || t.id || ':' || s.n, 'completed', 'no_answer', :t_start, :t_start, 0
FROM campaign_targets t CROSS JOIN generate_series(1, 2) s(n)
""",
    # Every interaction in one statement, inserted in time order (as they arrive), so the
    # target's rows are spread over the whole table like a real consumer's.
    """
INSERT INTO interactions (account_id, consumer_id, phone, channel, direction, started_at,
                          ended_at, status, outcome, campaign_id, operator, summary,
                          search_text, data)
SELECT account_id, consumer_id, phone, channel, direction, started_at,
       started_at + interval '3 minutes', 'completed', outcome, campaign_id, operator, summary,
       lower(summary), data
FROM (
  SELECT CASE WHEN s.kind < 0.85 THEN s.acc END AS account_id,
         CASE WHEN s.kind < 0.90 THEN s.acc - 2 END AS consumer_id,
         '+7916' || lpad(s.acc::text, 7, '0') AS phone,
         s.channel, s.direction, s.started_at,
         CASE WHEN s.channel = 'voice'
              THEN (CAST(:outcomes AS text[]))[1 + floor(random() * :n_outcomes)::int]
         END AS outcome,
         CASE WHEN s.direction = 'outbound' AND random() < 0.3
              THEN 1 + floor(random() * 3)::int END AS campaign_id,
         CAST(NULL AS text) AS operator,
         s.summary || ' №' || s.g AS summary,
         CAST('{}' AS jsonb) AS data
  FROM (
    SELECT g, random() AS kind, 4 + floor(random() * (:accounts - 3))::int AS acc,
           (CAST(:channels AS text[]))[1 + floor(random() * :n_channels)::int] AS channel,
           CASE WHEN random() < 0.4 THEN 'inbound' ELSE 'outbound' END AS direction,
           CAST(:t_end AS timestamptz) - random() * interval '365 days' AS started_at,
           (CAST(:words AS text[]))[1 + floor(random() * :n_words)::int] || ' '
             || (CAST(:words AS text[]))[1 + floor(random() * :n_words)::int] || ' '
             || (CAST(:words AS text[]))[1 + floor(random() * :n_words)::int] AS summary
    FROM generate_series(1, :others) g
  ) s
  UNION ALL
  SELECT CASE WHEN t.kind < 0.02 THEN 3 WHEN t.kind < 0.90 THEN t.acc END,
         CASE WHEN t.kind < 0.95 THEN 1 END,
         CASE WHEN t.kind >= 0.90 AND t.kind < 0.95 THEN NULL
              WHEN t.kind < 0.02 THEN '+79160000003'
              ELSE '+7916' || lpad(t.acc::text, 7, '0') END,
         CASE WHEN t.kind >= 0.95 THEN 'sms' WHEN t.kind >= 0.90 THEN 'voice'
              ELSE t.channel END,
         CASE WHEN t.kind >= 0.95 THEN 'outbound' WHEN t.kind >= 0.90 THEN 'inbound'
              ELSE t.direction END,
         t.started_at,
         CASE WHEN t.kind >= 0.95 THEN NULL
              WHEN t.kind >= 0.90 THEN 'operator_consulted'
              WHEN t.channel = 'voice' AND t.transfer THEN 'transferred_queue'
              WHEN t.channel = 'voice'
              THEN (CAST(:outcomes AS text[]))[1 + floor(random() * :n_outcomes)::int]
         END,
         CASE WHEN t.kind < 0.90 AND t.direction = 'outbound' AND random() < 0.3
              THEN 1 + floor(random() * 3)::int END,
         CASE WHEN t.kind >= 0.90 AND t.kind < 0.95 THEN CAST(:operator AS text) END,
         t.summary || ' №т' || t.g,
         CASE WHEN t.kind >= 0.90 AND t.kind < 0.95
              THEN jsonb_build_object('kind', 'operator_note')
              WHEN t.kind < 0.90 AND t.channel = 'voice' AND t.transfer
              THEN jsonb_build_object('handoff', jsonb_build_object(
                     'account_number', '50' || lpad(t.acc::text, 8, '0'),
                     'reason', 'debt', 'last_step', 'menu'))
              ELSE CAST('{}' AS jsonb) END
  FROM (
    SELECT g, random() AS kind, CASE WHEN random() < 0.6 THEN 1 ELSE 2 END AS acc,
           (CAST(:channels AS text[]))[1 + floor(random() * :n_channels)::int] AS channel,
           CASE WHEN random() < 0.4 THEN 'inbound' ELSE 'outbound' END AS direction,
           random() < 0.03 AS transfer,
           CAST(:t_end AS timestamptz) - random() * interval '1095 days' AS started_at,
           (CAST(:words AS text[]))[1 + floor(random() * :n_words)::int] || ' '
             || (CAST(:words AS text[]))[1 + floor(random() * :n_words)::int] || ' '
             || (CAST(:words AS text[]))[1 + floor(random() * :n_words)::int] AS summary
    FROM generate_series(1, :target_rows) g
  ) t
) r
ORDER BY started_at
""",
    """
INSERT INTO interaction_steps (interaction_id, seq, step, event, input, at)
SELECT i.id, s.n, (CAST(:steps AS text[]))[s.n], 'enter',
       CASE WHEN s.n = 3 THEN '12345' END, i.started_at + s.n * interval '15 seconds'
FROM interactions i CROSS JOIN generate_series(1, 3) s(n)
WHERE i.channel = 'voice' AND i.operator IS NULL
""",
    """
INSERT INTO transcripts (interaction_id, step, text, confidence, decision, at)
SELECT i.id, 'reading', 'двенадцать тысяч триста сорок пять', 0.87, 'accepted',
       i.started_at + interval '45 seconds'
FROM interactions i
WHERE i.channel = 'voice' AND i.operator IS NULL AND i.id % 4 = 0
""",
    """
INSERT INTO call_recordings (interaction_id, sid, url, duration_s, channels, status,
                             storage_path, created_at)
SELECT i.id, 'RE' || lpad(i.id::text, 32, '0'), 'https://api.example/RE' || i.id, 180, 1,
       'completed', :storage || '/RE' || lpad(i.id::text, 32, '0') || '.wav', i.started_at
FROM (
  (SELECT id, started_at FROM interactions
   WHERE account_id = 1 AND channel = 'voice' AND operator IS NULL
   ORDER BY started_at DESC LIMIT 2)
  UNION ALL
  (SELECT id, started_at FROM interactions
   WHERE channel = 'voice' AND consumer_id <> 1 AND id % 500 = 0)
) i
""",
    """
INSERT INTO cases (account_id, consumer_id, type, status, subject, description, sla_due_at,
                   created_at, closed_at)
SELECT c.account_id, c.consumer_id,
       (CAST(:case_types AS text[]))[1 + c.n % :n_case_types],
       CASE WHEN c.n % 3 = 0 THEN 'open' ELSE 'closed' END, 'Обращение ' || c.n, '',
       c.at + interval '3 days', c.at, CASE WHEN c.n % 3 <> 0 THEN c.at + interval '2 days' END
FROM (
  SELECT CASE WHEN g <= 36 THEN 1 + g % 2 WHEN g <= 38 THEN NULL ELSE 3 END AS account_id,
         1 AS consumer_id, g AS n, CAST(:t_end AS timestamptz) - g * interval '9 days' AS at
  FROM generate_series(1, 40) g
  UNION ALL
  SELECT a, a - 2, a, CAST(:t_end AS timestamptz) - (a % 300) * interval '1 day'
  FROM generate_series(4, :accounts) a WHERE a % 3 = 0
) c
""",
    """
INSERT INTO consents (contact, value, purpose, granted, source, given_at)
SELECT 'phone', '+7916' || lpad(a::text, 7, '0'), p, true, 'import', :t_start
FROM generate_series(1, :accounts) a
CROSS JOIN unnest(CAST(ARRAY['debt_notice', 'robot_calls'] AS text[])) p
WHERE a <= 3 OR a % 5 = 0
UNION ALL
SELECT 'email', 'c1@example.ru', 'e_receipt', true, 'import', :t_start
""",
    """
INSERT INTO do_not_contact (value, channel, reason, created_at, created_by)
SELECT '+7916' || lpad(a::text, 7, '0'), 'sms', 'supervisor', :t_start, 'console:bench'
FROM generate_series(1, :accounts) a WHERE a = 2 OR a % 20 = 0
""",
    """
INSERT INTO audit_log (at, actor, entity, entity_id, action, after, reason)
SELECT :t_start, 'console:bench', 'consent', id::text, 'insert', CAST('{}' AS jsonb),
       'по просьбе абонента'
FROM consents
UNION ALL
SELECT :t_start, 'console:bench', 'do_not_contact', id::text, 'insert', CAST('{}' AS jsonb),
       'по просьбе абонента'
FROM do_not_contact
""",
    # the tables seeded with explicit ids: their sequences continue after them
    """
SELECT setval(pg_get_serial_sequence('consumers', 'id'), (SELECT max(id) FROM consumers)),
       setval(pg_get_serial_sequence('accounts', 'id'), (SELECT max(id) FROM accounts)),
       setval(pg_get_serial_sequence('phone_numbers', 'id'), (SELECT max(id) FROM phone_numbers)),
       setval(pg_get_serial_sequence('meters', 'id'), (SELECT max(id) FROM meters)),
       setval(pg_get_serial_sequence('campaigns', 'id'), (SELECT max(id) FROM campaigns))
""",
)
COUNT_SQL = """
SELECT (SELECT count(*) FROM consumers) AS consumers, (SELECT count(*) FROM accounts) AS accounts,
       (SELECT count(*) FROM interactions) AS interactions,
       (SELECT count(*) FROM interaction_steps) AS interaction_steps,
       (SELECT count(*) FROM meter_readings) AS meter_readings,
       (SELECT count(*) FROM charges) AS charges, (SELECT count(*) FROM payments) AS payments,
       (SELECT count(*) FROM cases) AS cases
"""


# ---------------------------------------------------------------------------- seeding


def seed(engine: Engine, interactions: int, consumer_interactions: int) -> dict[str, Any]:
    """Seed the CRM (see the module); counts of what was written and seconds taken."""
    consumers = max(100, interactions // 20)
    started = time.perf_counter()
    with engine.begin() as conn:
        indexes = secondary_indexes(conn)
        for name, _ddl in indexes:
            conn.execute(text(f'DROP INDEX "{name}"'))
        conn.execute(text("SET LOCAL work_mem = '256MB'"))
        conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
        if conn.execute(
            text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        ).scalar():
            # The rows are consistent by construction: no per-row foreign-key triggers
            # (only a superuser may skip them; for others the checks simply run).
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("SELECT setseed(0.42)"))
        params = {
            "consumers": consumers,
            "accounts": consumers + 2,
            "others": interactions - consumer_interactions,
            "target_rows": consumer_interactions,
            "target_name": TARGET_NAME,
            "home": HOME,
            "other": OTHER,
            "regions": list(REGIONS),
            "n_regions": len(REGIONS),
            "surnames": list(SURNAMES),
            "n_surnames": len(SURNAMES),
            "first_names": list(FIRST_NAMES),
            "n_first_names": len(FIRST_NAMES),
            "patronymics": list(PATRONYMICS),
            "n_patronymics": len(PATRONYMICS),
            "words": list(WORDS),
            "n_words": len(WORDS),
            "channels": list(CHANNELS),
            "n_channels": len(CHANNELS),
            "outcomes": list(OUTCOMES),
            "n_outcomes": len(OUTCOMES),
            "steps": list(STEPS),
            "case_types": list(CASE_TYPES),
            "n_case_types": len(CASE_TYPES),
            "months": 12,
            "target_months": 60,
            "operator": USERNAME,
            "storage": "/var/lib/contactcenter/recordings",
            "t_start": T_START,
            "t_end": NOW,
        }
        for statement in SEED_SQL:
            conn.execute(text(statement), params)
        for _name, ddl in indexes:
            conn.execute(text(ddl))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        counts = dict(conn.execute(text(COUNT_SQL)).mappings().one())
    return {"seconds": round(time.perf_counter() - started, 1), "rows": counts}


# ---------------------------------------------------------------------------- the target


@dataclass
class Facts:
    """What the routes ask for (as a page's links or a person would give it) and what the
    bare SQL is given with it: the user's regions (None: all)."""

    regions: list[str] | None
    call_id: int
    timeline_after: str
    timeline_deep: str
    api_deep: str
    search_number: str
    search_phone: str
    search_e164: str
    search_name: str
    search_common: str


# The bare SQL, hand-written for PostgreSQL. ``{region}`` and ``{after}`` are filled by
# compose() with the constant conditions below (never with values: those are parameters).
REGION = "a.region = ANY(CAST(:regions AS text[]))"
AFTER = "AND (started_at, id) < (:at, :id)"
# One part of a history: the newest rows of one account, of the consumer without an
# account, of a phone without an account or consumer; each one range of its index.
NEWEST = "ORDER BY started_at DESC, id DESC LIMIT :n"
ACCOUNT_PART = "(SELECT * FROM interactions WHERE account_id = :a{n} {after} {newest})"
CONSUMER_PART = (
    "(SELECT * FROM interactions WHERE account_id IS NULL AND consumer_id = :consumer "
    "{after} {newest})"
)
PHONE_PART = (
    "(SELECT * FROM interactions WHERE account_id IS NULL AND consumer_id IS NULL "
    "AND phone = :p{n} {after} {newest})"
)
MERGED = "SELECT * FROM ({parts}) t {newest}"
CONSUMER_SQL = """
SELECT c.id, c.kind, c.full_name, c.inn, c.email, c.created_at, a.id AS account_id, a.number,
       a.number_raw, a.status, a.region, a.timezone, a.service_address, a.ivr_code, a.e_receipt
FROM consumers c JOIN accounts a ON a.consumer_id = c.id
WHERE c.id = :c AND {region} ORDER BY a.id
"""
PHONES_SQL = """
SELECT ap.account_id, p.e164, p.verified FROM account_phones ap
JOIN phone_numbers p ON p.id = ap.phone_id WHERE ap.account_id = ANY(CAST(:a AS int[]))
ORDER BY p.verified DESC, p.id
"""
CARDS_SQL = """
SELECT * FROM accounts a WHERE a.consumer_id = ANY(CAST(:ids AS int[])) AND {region}
ORDER BY a.id
"""
SEARCH_NUMBER_SQL = """
SELECT c.* FROM consumers c
WHERE c.id IN (SELECT a.consumer_id FROM accounts a WHERE a.number = :n AND {region})
ORDER BY c.id LIMIT :limit
"""
SEARCH_PHONE_SQL = """
SELECT c.* FROM consumers c
WHERE c.id IN (SELECT a.consumer_id FROM phone_numbers p
               JOIN account_phones ap ON ap.phone_id = p.id
               JOIN accounts a ON a.id = ap.account_id WHERE p.e164 = :p AND {region})
ORDER BY c.id LIMIT :limit
"""
SEARCH_NAME_SQL = """
SELECT c.* FROM consumers c
WHERE c.full_name ILIKE :q
  AND EXISTS (SELECT 1 FROM accounts a WHERE a.consumer_id = c.id AND {region})
ORDER BY c.id LIMIT :limit
"""


def compose(template: str, facts: Facts, *, after: bool = False) -> str:
    """``template`` with its ``{region}`` (none for a user of all regions) and ``{after}``
    (the keyset condition, with ``after``) conditions."""
    return template.format(
        region="true" if facts.regions is None else REGION, after=AFTER if after else ""
    )


def history_sql(accounts: int, phones: int | None, *, after: bool) -> str:
    """The newest interactions of ``accounts`` accounts (parameters ``a0``…) and, unless
    ``phones`` is None, of the consumer without an account and of ``phones`` phones
    (``p0``…) without an account or consumer (the timeline): one part per account and
    phone, each read from its index, merged (``after``: past the keyset ``:at``, ``:id``)."""
    fill = {"after": AFTER if after else "", "newest": NEWEST}
    parts = [ACCOUNT_PART.format(n=n, **fill) for n in range(accounts)]
    if phones is not None:
        parts.append(CONSUMER_PART.format(**fill))
        parts.extend(PHONE_PART.format(n=n, **fill) for n in range(phones))
    return MERGED.format(parts=" UNION ALL ".join(parts), newest=NEWEST)


def history_params(accounts: list[int], phones: list[str] | None = None) -> dict[str, Any]:
    """The parameters of :func:`history_sql` for these accounts and phones."""
    params: dict[str, Any] = {f"a{n}": account for n, account in enumerate(accounts)}
    params.update({f"p{n}": phone for n, phone in enumerate(phones or [])})
    return params


def find_facts(engine: Engine, all_regions: bool) -> Facts:
    """The target's visible accounts, phones, a transferred call and the page cursors."""
    regions = None if all_regions else [HOME]
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, number, region FROM accounts WHERE consumer_id = :c ORDER BY id"),
            {"c": TARGET},
        ).all()
        rows = [r for r in rows if regions is None or r.region in regions]
        accounts = [int(r.id) for r in rows]
        phones = list(
            conn.execute(
                text(
                    "SELECT p.e164 FROM account_phones ap JOIN phone_numbers p "
                    "ON p.id = ap.phone_id WHERE ap.account_id = ANY(CAST(:a AS int[])) "
                    "ORDER BY p.id"
                ),
                {"a": accounts},
            ).scalars()
        )
        call_id = conn.execute(
            text(
                "SELECT id FROM interactions WHERE account_id = :a "
                "AND outcome LIKE 'transferred%' ORDER BY started_at DESC LIMIT 1"
            ),
            {"a": accounts[0]},
        ).scalar_one()
        last = phones[-1]
        facts = Facts(
            regions=regions,
            call_id=int(call_id),
            timeline_after="",
            timeline_deep="",
            api_deep="",
            search_number=str(rows[0].number),
            # the last phone as people write it: 8 (916) 000-00-02
            search_phone=f"8 ({last[2:5]}) {last[5:8]}-{last[8:10]}-{last[10:]}",
            search_e164=last,
            search_name=TARGET_NAME.split()[0][:-3],
            search_common=SURNAMES[0],
        )
        keys = conn.execute(
            text(history_sql(len(accounts), len(phones), after=False)),
            {**history_params(accounts, phones), "consumer": TARGET, "n": 2**31 - 1},
        ).all()
        after, deep = keys[TIMELINE_PAGE - 1], keys[len(keys) // 2]
        facts.timeline_after = paging.encode_cursor((after.started_at, after.id))
        facts.timeline_deep = paging.encode_cursor((deep.started_at, deep.id))
        mine = _on_accounts(conn, accounts)
        on_accounts = [key for key in keys if key.id in mine]
        middle = on_accounts[len(on_accounts) // 2]
        facts.api_deep = history.encode_cursor(middle.started_at, int(middle.id))
    return facts


def _on_accounts(conn: Connection, accounts: list[int]) -> set[int]:
    return set(
        conn.execute(
            text("SELECT id FROM interactions WHERE account_id = ANY(CAST(:a AS int[]))"),
            {"a": accounts},
        ).scalars()
    )


# ---------------------------------------------------------------------------- bare SQL


def _all(conn: Connection, sql: str, **params: Any) -> list[Any]:
    return list(conn.execute(text(sql), params).all())


@dataclass(frozen=True)
class Visible:
    """The consumer with the visible accounts and their phones, as the bare SQL reads them."""

    accounts: list[int]
    phones: list[str]
    email: str | None


def _consumer(conn: Connection, facts: Facts, *, phones: bool) -> Visible:
    """The consumer with their visible accounts (and, with ``phones``, the accounts' phones)."""
    rows = _all(conn, compose(CONSUMER_SQL, facts), c=TARGET, regions=facts.regions)
    accounts = [int(r.account_id) for r in rows]
    found = _all(conn, PHONES_SQL, a=accounts) if phones else []
    return Visible(accounts, list(dict.fromkeys(r.e164 for r in found)), rows[0].email)


def _timeline_page(conn: Connection, visible: Visible, cursor: str | None) -> list[int]:
    """A timeline page with everything its items show; the interaction ids."""
    params = {
        **history_params(visible.accounts, visible.phones),
        "consumer": TARGET,
        "n": TIMELINE_PAGE + 1,
    }
    if cursor:
        params["at"], params["id"] = paging.decode_cursor(cursor, (datetime, int))
    statement = history_sql(len(visible.accounts), len(visible.phones), after=bool(cursor))
    rows = _all(conn, statement, **params)[:TIMELINE_PAGE]
    ids = [int(r.id) for r in rows]
    _all(
        conn,
        "SELECT * FROM interaction_steps WHERE interaction_id = ANY(CAST(:ids AS bigint[])) "
        "ORDER BY interaction_id, seq",
        ids=ids,
    )
    _all(
        conn,
        "SELECT * FROM transcripts WHERE interaction_id = ANY(CAST(:ids AS bigint[])) ORDER BY id",
        ids=ids,
    )
    _all(
        conn,
        "SELECT * FROM call_recordings WHERE interaction_id = ANY(CAST(:ids AS bigint[])) "
        "ORDER BY id",
        ids=ids,
    )
    campaigns = sorted({int(r.campaign_id) for r in rows if r.campaign_id is not None})
    if campaigns:
        _all(
            conn,
            "SELECT id, name FROM campaigns WHERE id = ANY(CAST(:ids AS int[]))",
            ids=campaigns,
        )
    return ids


def _account_blocks(conn: Connection, accounts: list[int]) -> None:
    """Meters with each zone's latest readings, the latest charges and payments and the
    rows of each balance, of the visible accounts."""
    _all(
        conn,
        "SELECT m.*, z.zone, r.* FROM meters m "
        "CROSS JOIN LATERAL jsonb_array_elements_text(m.zones) WITH ORDINALITY z(zone, n) "
        "LEFT JOIN LATERAL (SELECT * FROM meter_readings r WHERE r.meter_id = m.id "
        "AND r.zone = z.zone ORDER BY r.submitted_at DESC, r.id DESC LIMIT 12) r ON true "
        "WHERE m.account_id = ANY(CAST(:a AS int[])) ORDER BY m.account_id, m.id, z.n",
        a=accounts,
    )
    _all(
        conn,
        "SELECT x.* FROM unnest(CAST(:a AS int[])) a(id) CROSS JOIN LATERAL "
        "(SELECT * FROM charges t WHERE t.account_id = a.id "
        "ORDER BY t.due_date DESC, t.id DESC LIMIT 12) x",
        a=accounts,
    )
    _all(
        conn,
        "SELECT x.* FROM unnest(CAST(:a AS int[])) a(id) CROSS JOIN LATERAL "
        "(SELECT * FROM payments t WHERE t.account_id = a.id "
        "ORDER BY t.paid_on DESC, t.id DESC LIMIT 12) x",
        a=accounts,
    )
    today = NOW.date()
    _all(
        conn,
        "SELECT account_id, due_date, amount FROM charges "
        "WHERE account_id = ANY(CAST(:a AS int[])) AND period <= :today",
        a=accounts,
        today=today,
    )
    _all(
        conn,
        "SELECT account_id, paid_on, amount FROM payments "
        "WHERE account_id = ANY(CAST(:a AS int[])) AND paid_on <= :today",
        a=accounts,
        today=today,
    )


def _other_blocks(conn: Connection, visible: Visible) -> None:
    """Cases, campaign targets with their attempts, do-not-contact entries and consents."""
    _all(
        conn,
        "SELECT * FROM cases WHERE account_id = ANY(CAST(:a AS int[])) "
        "OR (account_id IS NULL AND consumer_id = :c) ORDER BY id DESC LIMIT 50",
        a=visible.accounts,
        c=TARGET,
    )
    targets = _all(
        conn,
        "SELECT t.*, c.name, a.number FROM campaign_targets t "
        "JOIN campaigns c ON c.id = t.campaign_id JOIN accounts a ON a.id = t.account_id "
        "WHERE t.account_id = ANY(CAST(:a AS int[])) ORDER BY t.id DESC LIMIT 20",
        a=visible.accounts,
    )
    _all(
        conn,
        "SELECT * FROM contact_attempts WHERE target_id = ANY(CAST(:t AS int[])) "
        "ORDER BY attempt_no DESC",
        t=[int(t.id) for t in targets],
    )
    dnc = _all(
        conn,
        "SELECT * FROM do_not_contact WHERE value = ANY(CAST(:v AS text[])) ORDER BY id DESC",
        v=visible.phones,
    )
    consents = _all(
        conn,
        "SELECT * FROM consents WHERE value = ANY(CAST(:v AS text[])) ORDER BY id DESC",
        v=visible.phones + ([visible.email] if visible.email else []),
    )
    _all(
        conn,
        "SELECT entity, entity_id, actor, reason FROM audit_log WHERE "
        "(entity = 'do_not_contact' AND entity_id = ANY(CAST(:d AS text[])) AND action = 'insert') "
        "OR (entity = 'consent' AND entity_id = ANY(CAST(:k AS text[]))) ORDER BY id",
        d=[str(r.id) for r in dnc],
        k=[str(r.id) for r in consents],
    )


def bare_360(conn: Connection, facts: Facts) -> list[int]:
    """Everything the 360 page shows; the timeline's interaction ids."""
    visible = _consumer(conn, facts, phones=True)
    _account_blocks(conn, visible.accounts)
    _other_blocks(conn, visible)
    return _timeline_page(conn, visible, None)


def bare_desk(conn: Connection, facts: Facts) -> list[int]:
    """The desk page: the 360 page's rows and the transferred call."""
    ids = bare_360(conn, facts)
    _all(conn, "SELECT * FROM interactions WHERE id = :id", id=facts.call_id)
    return ids


def _bare_timeline(cursor: Callable[[Facts], str]) -> Callable[[Connection, Facts], list[int]]:
    def run(conn: Connection, facts: Facts) -> list[int]:
        visible = _consumer(conn, facts, phones=True)
        return _timeline_page(conn, visible, cursor(facts))

    return run


def bare_api_consumer(conn: Connection, facts: Facts) -> list[str]:
    """The consumer with their visible accounts; the account numbers."""
    return [str(r.number) for r in _all(conn, compose(CONSUMER_SQL, facts), c=TARGET,
                                        regions=facts.regions)]  # fmt: skip


def _bare_api_history(deep: bool) -> Callable[[Connection, Facts], list[int]]:
    def run(conn: Connection, facts: Facts) -> list[int]:
        visible = _consumer(conn, facts, phones=False)
        params = {**history_params(visible.accounts), "n": API_PAGE + 1}
        if deep:
            params["at"], params["id"] = history.decode_cursor(facts.api_deep)
        statement = history_sql(len(visible.accounts), None, after=deep)
        rows = _all(conn, statement, **params)[:API_PAGE]
        ids = [int(r.id) for r in rows]
        _all(
            conn,
            "SELECT DISTINCT interaction_id FROM call_recordings "
            "WHERE interaction_id = ANY(CAST(:ids AS bigint[]))",
            ids=ids,
        )
        return ids

    return run


def _bare_search(
    template: str, value: Callable[[Facts], dict[str, Any]]
) -> Callable[[Connection, Facts], list[int]]:
    def run(conn: Connection, facts: Facts) -> list[int]:
        rows = _all(
            conn,
            compose(template, facts),
            regions=facts.regions,
            limit=API_PAGE + 1,
            **value(facts),
        )
        ids = [int(r.id) for r in rows][:API_PAGE]
        _all(conn, compose(CARDS_SQL, facts), ids=ids, regions=facts.regions)
        return ids

    return run


# ---------------------------------------------------------------------------- routes


INTERACTION_ID = re.compile(r'data-interaction="(\d+)"')


def _timeline_ids(response: TestResponse) -> list[int]:
    return [int(x) for x in INTERACTION_ID.findall(response.get_data(as_text=True))]


def _item_ids(response: TestResponse) -> list[int]:
    return [int(item["id"]) for item in (response.get_json() or {})["items"]]


def _account_numbers(response: TestResponse) -> list[str]:
    return [str(a["number"]) for a in (response.get_json() or {})["accounts"]]


@dataclass(frozen=True)
class Route:
    """One page or answer: its URL, how to read the rows it shows, and the bare SQL."""

    name: str
    url: Callable[[Facts], str]
    api: bool
    shown: Callable[[TestResponse], list[Any]]
    bare: Callable[[Connection, Facts], list[Any]]


def routes() -> list[Route]:
    """The routes measured."""
    consumer = f"/console/consumers/{TARGET}"
    api = f"/api/consumers/{TARGET}"
    return [
        Route("console: consumer 360 page", lambda f: consumer, False, _timeline_ids, bare_360),
        Route(
            "console: timeline, next page",
            lambda f: f"{consumer}/timeline?after={f.timeline_after}",
            False,
            _timeline_ids,
            _bare_timeline(lambda f: f.timeline_after),
        ),
        Route(
            "console: timeline, deep page",
            lambda f: f"{consumer}/timeline?after={f.timeline_deep}",
            False,
            _timeline_ids,
            _bare_timeline(lambda f: f.timeline_deep),
        ),
        Route(
            "console: desk, consumer + call",
            lambda f: f"/console/desk/consumers/{TARGET}?call={f.call_id}",
            False,
            _timeline_ids,
            bare_desk,
        ),
        Route("api: consumer", lambda f: api, True, _account_numbers, bare_api_consumer),
        Route(
            "api: interactions, first page",
            lambda f: f"{api}/interactions",
            True,
            _item_ids,
            _bare_api_history(False),
        ),
        Route(
            "api: interactions, deep page",
            lambda f: f"{api}/interactions?cursor={f.api_deep}",
            True,
            _item_ids,
            _bare_api_history(True),
        ),
        Route(
            "api: search by account number",
            lambda f: f"/api/consumers?q={quote(f.search_number)}",
            True,
            _item_ids,
            _bare_search(SEARCH_NUMBER_SQL, lambda f: {"n": f.search_number}),
        ),
        Route(
            "api: search by phone",
            lambda f: f"/api/consumers?q={quote(f.search_phone)}",
            True,
            _item_ids,
            _bare_search(SEARCH_PHONE_SQL, lambda f: {"p": f.search_e164}),
        ),
        Route(
            "api: search by name (rare)",
            lambda f: f"/api/consumers?q={quote(f.search_name)}",
            True,
            _item_ids,
            _bare_search(SEARCH_NAME_SQL, lambda f: {"q": f"%{f.search_name}%"}),
        ),
        Route(
            "api: search by name (common)",
            lambda f: f"/api/consumers?q={quote(f.search_common)}",
            True,
            _item_ids,
            _bare_search(SEARCH_NAME_SQL, lambda f: {"q": f"%{f.search_common}%"}),
        ),
    ]


# ---------------------------------------------------------------------------- the app


@dataclass
class AppUnderTest:
    """The app, a logged-in console client, the API token, the statements it sends."""

    app: Flask
    client: FlaskClient
    token: str
    captured: list[tuple[str, Any]] = field(default_factory=list)
    capturing: bool = False

    def get(self, route: Route, facts: Facts) -> TestResponse:
        """One request of ``route``."""
        headers = {"Authorization": f"Bearer {self.token}"} if route.api else {}
        return self.client.get(route.url(facts), headers=headers)

    @contextmanager
    def capture(self) -> Iterator[list[tuple[str, Any]]]:
        """The statements the app sends inside the block."""
        self.captured = []
        self.capturing = True
        try:
            yield self.captured
        finally:
            self.capturing = False


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@contextmanager
def app_under_test(url: str, redis_url: str, all_regions: bool) -> Iterator[AppUnderTest]:
    """The real app on the benchmark database with a logged-in operator (see the module)."""
    password = secrets.token_urlsafe(16)
    database = Database(url)
    try:
        with database.transaction() as s:
            create_user(
                s,
                USERNAME,
                roles=["operator"],
                regions=None if all_regions else [HOME],
                password=password,
            )
            token = issue_api_token(s, USERNAME)
    finally:
        database.dispose()
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        settings = Settings(
            database_url=url,
            redis_url=redis_url,
            telephony="sandbox",
            public_base_url="http://localhost",
        ).with_overrides(
            console_secret_key=secrets.token_hex(32),
            console_secret_key_file=str(Path(tmp) / "console-secret-key"),
            recordings_dir=str(Path(tmp) / "recordings"),
            imports_dir=str(Path(tmp) / "imports"),
        )
        app = create_app(settings)
        freeze_startup_objects()  # as the image's gunicorn workers do after loading the app
        services = services_of(app)
        services.clock = lambda: NOW
        client = app.test_client()
        login_form = client.get("/console/login").get_data(as_text=True)
        found = CSRF.search(login_form)
        if found is None:
            raise RuntimeError("no CSRF token on the login page")
        answer = client.post(
            "/console/login",
            data={"username": USERNAME, "password": password, "csrf_token": found.group(1)},
        )
        if answer.status_code != 302:
            raise RuntimeError(f"console login failed: {answer.status_code}")
        under_test = AppUnderTest(app, client, token)

        def record(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
            if under_test.capturing:
                under_test.captured.append((statement, parameters))

        event.listen(services.db.engine, "before_cursor_execute", record)
        try:
            yield under_test
        finally:
            page = client.get("/console/consumers").get_data(as_text=True)
            token_field = CSRF.search(page) or re.search(
                r'<meta name="csrf-token" content="([^"]+)"', page
            )
            if token_field is not None:
                client.post("/console/logout", data={"csrf_token": token_field.group(1)})
            services.db.dispose()


# ---------------------------------------------------------------------------- measuring


def seq_scans(conn: Connection, statements: Sequence[tuple[str, Any]]) -> list[str]:
    """``Seq Scan <table>`` of every plan of ``statements`` that reads interactions."""
    found: list[str] = []
    for statement, parameters in statements:
        if not statement.lstrip().upper().startswith("SELECT") or not re.search(
            r"\binteractions\b", statement
        ):
            continue
        plan = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters)

        def walk(node: dict[str, Any]) -> None:
            if node.get("Node Type") == "Seq Scan":
                found.append(f"Seq Scan {node.get('Relation Name', '')}")
            for child in node.get("Plans", []):
                walk(child)

        walk(plan.scalar_one()[0]["Plan"])
    return found


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def measure(
    under_test: AppUnderTest,
    engine: Engine,
    facts: Facts,
    route: Route,
    repeat: int,
    warmup: int,
) -> dict[str, Any]:
    """Check that app and bare SQL show the same rows, then time both (interleaved)."""
    response = under_test.get(route, facts)
    if response.status_code != 200:
        raise RuntimeError(f"{route.name}: HTTP {response.status_code}")
    with engine.connect() as conn:
        bare_rows = route.bare(conn, facts)
    shown = route.shown(response)
    if shown != bare_rows or not shown:
        raise RuntimeError(
            f"{route.name}: the app shows {shown[:5]}…, the bare SQL {bare_rows[:5]}…"
        )
    with under_test.capture() as statements:
        under_test.get(route, facts)
    with engine.connect() as conn:
        scans = seq_scans(conn, statements)
    seconds: dict[str, list[float]] = {"app": [], "bare": []}
    for n in range(warmup + repeat):
        for side in ("app", "bare") if n % 2 == 0 else ("bare", "app"):
            started = time.perf_counter()
            if side == "app":
                status = under_test.get(route, facts).status_code
                if status != 200:
                    raise RuntimeError(f"{route.name}: HTTP {status}")
            else:
                with engine.connect() as conn:
                    route.bare(conn, facts)
            if n >= warmup:
                seconds[side].append(time.perf_counter() - started)
    app_s, bare_s = seconds["app"], seconds["bare"]
    with engine.connect() as conn:
        recorder: list[str] = []

        def count(*_: Any) -> None:
            recorder.append("")

        event.listen(conn, "before_cursor_execute", count)
        route.bare(conn, facts)
        event.remove(conn, "before_cursor_execute", count)
    p95, bare_p95 = _ms(app_s, 0.95), _ms(bare_s, 0.95)
    return {
        "route": route.name,
        "rows": len(shown),
        "queries": len(statements),
        "bare_queries": len(recorder),
        "p50_ms": _ms(app_s, 0.5),
        "p95_ms": p95,
        "bare_p50_ms": _ms(bare_s, 0.5),
        "bare_p95_ms": bare_p95,
        "ratio": round(p95 / max(bare_p95, 0.001), 2),
        "seq_scans": scans,
    }


def floor(under_test: AppUnderTest, repeat: int, warmup: int) -> dict[str, float]:
    """p50/p95 of ``GET /api/me``: an authenticated API request that reads no data (the
    token check, the scope, validation and JSON), for scale."""
    headers = {"Authorization": f"Bearer {under_test.token}"}
    seconds = []
    for n in range(warmup + repeat):
        started = time.perf_counter()
        status = under_test.client.get("/api/me", headers=headers).status_code
        if status != 200:
            raise RuntimeError(f"/api/me: HTTP {status}")
        if n >= warmup:
            seconds.append(time.perf_counter() - started)
    return {"p50_ms": _ms(seconds, 0.5), "p95_ms": _ms(seconds, 0.95)}


def profile(under_test: AppUnderTest, facts: Facts, route: Route, repeat: int) -> str:
    """cProfile of ``repeat`` requests of ``route``: the top functions by cumulative time."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(repeat):
        under_test.get(route, facts)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
    return out.getvalue()


def run(
    interactions: int,
    consumer_interactions: int,
    *,
    repeat: int,
    warmup: int,
    admin_url: str,
    redis_url: str,
    all_regions: bool = False,
    keep: bool = False,
    profile_routes: bool = False,
) -> dict[str, Any]:
    """Seed, then measure every route; the figures as a dict."""
    out: dict[str, Any] = {
        "interactions": interactions,
        "consumer_interactions": consumer_interactions,
        "repeat": repeat,
        "scope": "all regions" if all_regions else f"operator of {HOME}",
        "cpus": os.cpu_count(),
        "load_average_start": Path("/proc/loadavg").read_text().split()[:3]
        if Path("/proc/loadavg").exists()
        else None,
        "routes": [],
        "profiles": {},
    }
    with fresh_database(admin_url, keep) as url:
        engine = make_engine(url)
        try:
            out["seed"] = seed(engine, interactions, consumer_interactions)
            facts = find_facts(engine, all_regions)
            with app_under_test(url, redis_url, all_regions) as under_test:
                for route in routes():
                    out["routes"].append(measure(under_test, engine, facts, route, repeat, warmup))
                    if profile_routes:
                        out["profiles"][route.name] = profile(under_test, facts, route, repeat)
                out["floor"] = floor(under_test, repeat, warmup)
        finally:
            engine.dispose()
    out["load_average_end"] = (
        Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None
    )
    return out


def failures(figures: dict[str, Any], max_ratio: float) -> list[str]:
    """What fails the run: a sequential scan of interactions, a ratio above ``max_ratio``
    (0: no ratio limit)."""
    found = []
    for r in figures["routes"]:
        scans = [s for s in r["seq_scans"] if s.endswith(" interactions")]
        if scans:
            found.append(f"{r['route']}: sequential scan of interactions")
        if max_ratio and r["ratio"] > max_ratio:
            found.append(f"{r['route']}: p95 {r['ratio']}x the bare SQL (limit {max_ratio}x)")
    return found


def render(figures: dict[str, Any]) -> str:
    """The figures as a text table."""
    seed_info = figures["seed"]
    rows = seed_info["rows"]
    start = " ".join(figures["load_average_start"] or [])
    end = " ".join(figures["load_average_end"] or [])
    lines = [
        (
            f"{rows['interactions']:,} interactions ({figures['consumer_interactions']:,} of "
            f"consumer {TARGET}), {rows['consumers']:,} consumers, {rows['accounts']:,} "
            f"accounts, {rows['interaction_steps']:,} IVR steps, {rows['meter_readings']:,} "
            f"readings; seeded in {seed_info['seconds']} s"
        ),
        (
            f"user: {figures['scope']}; {figures['repeat']} timed runs per route; "
            f"cpus {figures['cpus']}; load average {start} (start), {end} (end)"
        ),
        (
            f"{'route':34} {'rows':>4} {'SQL':>4} {'p50 ms':>8} {'p95 ms':>8} {'bare SQL':>8} "
            f"{'bare p50':>8} {'bare p95':>8} {'ratio':>6}"
        ),
    ]
    for r in figures["routes"]:
        lines.append(
            f"{r['route']:34} {r['rows']:4} {r['queries']:4} {r['p50_ms']:8} {r['p95_ms']:8} "
            f"{r['bare_queries']:8} {r['bare_p50_ms']:8} {r['bare_p95_ms']:8} {r['ratio']:6}"
            + (f"  {', '.join(r['seq_scans'])}" if r["seq_scans"] else "")
        )
    if "floor" in figures:
        lines.append(
            f"for scale, GET /api/me (the token check, no data): p50 {figures['floor']['p50_ms']} "
            f"ms, p95 {figures['floor']['p95_ms']} ms"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; prints the table (or JSON), 1 when a check fails."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--interactions", type=int, default=None, help="default 1,000,000")
    parser.add_argument(
        "--consumer-interactions", type=int, default=None, help="the heavy one's; default 10,000"
    )
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per route (100)")
    parser.add_argument(
        "--quick", action="store_true", help="10 runs per route, 100,000 / 2,000 by default"
    )
    parser.add_argument(
        "--max-ratio", type=float, default=3.0, help="largest p95 / bare p95 (0: no limit)"
    )
    parser.add_argument("--all-regions", action="store_true", help="a user of every region")
    parser.add_argument(
        "--admin-url", default=os.environ.get("BENCH_PG_ADMIN_URL", DEFAULT_ADMIN_URL)
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--profile", action="store_true", help="print a cProfile per route")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    interactions = args.interactions or (100_000 if args.quick else 1_000_000)
    mine = args.consumer_interactions or (2_000 if args.quick else 10_000)
    repeat = args.repeat or (10 if args.quick else 100)
    if not args.admin_url.startswith("postgresql"):
        parser.error("this benchmark needs PostgreSQL (--admin-url postgresql+psycopg://...)")
    if not 100 <= mine < interactions:
        parser.error("--consumer-interactions must be at least 100 and below --interactions")
    if repeat < 1 or args.max_ratio < 0:
        parser.error("--repeat must be positive and --max-ratio not negative")
    figures = run(
        interactions,
        mine,
        repeat=repeat,
        warmup=2 if args.quick else 5,
        admin_url=args.admin_url,
        redis_url=args.redis_url,
        all_regions=args.all_regions,
        keep=args.keep,
        profile_routes=args.profile,
    )
    if args.json:
        print(json.dumps(figures, indent=2, ensure_ascii=False, default=str))
    else:
        for name, text_ in figures["profiles"].items():
            print(f"-- profile: {name}\n{text_}")
        print(render(figures))
    found = failures(figures, args.max_ratio)
    for failure in found:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
