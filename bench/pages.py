"""Benchmark of the review pages under load, on PostgreSQL with N churn predictions.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_pages \\
        .venv/bin/python bench/pages.py --predictions 1000000 [--duration 20] [--clients 50]

Setup (idempotent, skipped when the rows are there): migrations, N members, one active churn
ModelVersion, N churn predictions and N reviews (about 60 % auto-approved, 30 % analyst pending,
10 % expert pending), generated server-side with `INSERT ... SELECT ... generate_series` and
random(); then VACUUM (ANALYZE), reason codes, the demo users (analyst / analyst-demo) and an
API token for the analyst. The first run on an empty database takes about two minutes.

Then serves the app with gunicorn on a free loopback port and measures, as the logged-in
analyst: the queue's first page, queue page 500 (keyset cursor computed in SQL), a member page
(random pending analyst reviews) and the approve API (token auth, a distinct pending analyst
review per request). Each: p50/p95 of 200 sequential requests from one client, then `--clients`
concurrent clients for `--duration` seconds from the built-in load generator (asyncio, raw
HTTP/1.1, closed loop like wrk: nothing to install), 409s and other non-2xx counted apart.
Beside the latencies it prints what a request costs in CPU (gunicorn workers and PostgreSQL
backends, measured from /proc), what the load generator itself used, and how busy the whole
machine was: on a shared 2-core machine, anything else running shows up there.
"""

import argparse
import asyncio
import json
import os
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.client import HTTPConnection
from http.cookies import SimpleCookie
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = 4243
CUTOFF = datetime(2026, 1, 1, tzinfo=UTC)
PREFIX = "bench-"
SINGLE_REQUESTS = 200
WARMUP_REQUESTS = 20
QUEUE_PAGE = 500
TARGET_SINGLE_P95_MS = 100
TARGET_CONCURRENT_P95_MS = 300
# Sync workers, as production runs them (docker/compose.yml: 3): on 2 cores, 3 keep both busy
# while one waits on PostgreSQL; gthread with keep-alive pinned most of 50 connections to one
# worker and had the worst tail.
DEFAULT_WORKERS = 3
BENCH_BROKER_URL = "redis://127.0.0.1:6379/14"
BENCH_CACHE_URL = "redis://127.0.0.1:6379/13"
# Five features every explanation names, with how their values are drawn.
TOP_FEATURES = (
    "days_since_last_purchase",
    "spend_365",
    "logins_30",
    "tenure_days",
    "return_share_365",
)
# The bench model's features, in the order its predictions store their values.
MODEL_FEATURES = (*TOP_FEATURES, "sessions_30")


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty.settings.base")
    # A decision queues its labeling task on commit: to a Redis database of the bench's own, as
    # in production, not into the development broker folder. No worker runs; purged at the end.
    os.environ.setdefault("CELERY_BROKER_URL", BENCH_BROKER_URL)
    # Sessions from a shared cache, as in production (loyalty/settings/base.py, CACHE_URL);
    # CACHE_URL= (empty) measures without.
    os.environ.setdefault("CACHE_URL", BENCH_CACHE_URL)
    import django

    django.setup()


# --- setup ----------------------------------------------------------------------------------

MEMBERS_SQL = """
INSERT INTO loyalty_member (external_id, joined_on, tier, points_balance, consent_profiling,
    consent_marketing, consent_changed_at, age_band, region, erased_at, created_at, updated_at)
SELECT %(prefix)s || lpad(g::text, 8, '0'),
       date '2016-01-01' + floor(random() * 3500)::int,
       CASE WHEN u < 0.5 THEN 'bronze' WHEN u < 0.8 THEN 'silver'
            WHEN u < 0.95 THEN 'gold' ELSE 'platinum' END,
       floor(random() * 20000)::int, true, true, now(), '', '', NULL, now(), now()
FROM (SELECT g, random() AS u FROM generate_series(1, %(n)s) g) s
ON CONFLICT (external_id) DO NOTHING
"""

# Confidence decides the route later: >= 0.9 auto (60 %), 0.5-0.9 analyst (30 %), < 0.5 expert.
# The explanation adds up: base + top contributions + remainder = margin = logit(score).
PREDICTIONS_SQL = """
INSERT INTO predictions_prediction (member_id, model_version_id, kind, cutoff, scored_at, score,
    probabilities, interval_low, interval_high, label_set, recommended_action_id, confidence,
    explanation, feature_values, member_value)
SELECT id, %(version)s, 'churn', %(cutoff)s, now(), s, NULL,
       greatest(s - w, 0.0), least(s + w, 1.0),
       CASE WHEN s + w < 0.5 THEN '["stay"]' WHEN s - w > 0.5 THEN '["churn"]'
            ELSE '["stay", "churn"]' END::jsonb,
       NULL,
       CASE WHEN u < 0.6 THEN 0.9 + 0.0999 * random() WHEN u < 0.9 THEN 0.5 + 0.3999 * random()
            ELSE 0.2 + 0.2999 * random() END,
       jsonb_build_object(
           'base_value', b,
           'margin', ln(s / (1 - s)),
           'top', jsonb_build_array(
               jsonb_build_object('feature', 'days_since_last_purchase', 'name', %(n1)s,
                                  'value', dslp, 'contribution', c1),
               jsonb_build_object('feature', 'spend_365', 'name', %(n2)s,
                                  'value', spend, 'contribution', c2),
               jsonb_build_object('feature', 'logins_30', 'name', %(n3)s,
                                  'value', logins, 'contribution', c3),
               jsonb_build_object('feature', 'tenure_days', 'name', %(n4)s,
                                  'value', tenure, 'contribution', c4),
               jsonb_build_object('feature', 'return_share_365', 'name', %(n5)s,
                                  'value', rshare, 'contribution', c5)),
           'remainder', ln(s / (1 - s)) - b - c1 - c2 - c3 - c4 - c5),
       jsonb_build_array(dslp, spend, logins, tenure, rshare, sessions),
       spend
FROM (
    SELECT m.id, 0.02 + 0.96 * random() AS s, 0.02 + 0.15 * random() AS w, random() AS u,
           -1.5 + 0.5 * random() AS b,
           1.6 * (random() - 0.5) AS c1, 1.0 * (random() - 0.5) AS c2,
           0.6 * (random() - 0.5) AS c3, 0.4 * (random() - 0.5) AS c4,
           0.2 * (random() - 0.5) AS c5,
           floor(random() * 300)::int AS dslp, round((random() ^ 3 * 5000)::numeric, 2) AS spend,
           floor(random() * 25)::int AS logins, floor(random() * 3500)::int AS tenure,
           round(random()::numeric * 0.3, 3) AS rshare, floor(random() * 40)::int AS sessions
    FROM loyalty_member m
    WHERE m.external_id LIKE %(like)s
      AND NOT EXISTS (SELECT 1 FROM predictions_prediction p
                      WHERE p.member_id = m.id AND p.model_version_id = %(version)s)
    ORDER BY m.id
    LIMIT %(n)s
) r
"""

REVIEWS_SQL = """
INSERT INTO reviews_review (prediction_id, member_id, kind, route, state, route_reason,
    policy_id, priority, tier, member_value, risk, confidence, created_at, routed_at, due_at,
    escalated_at, escalated_by_id, escalation_reason_id, escalation_comment, analyst_proposal,
    decided_at)
SELECT id, member_id, 'churn', route,
       CASE WHEN route = 'auto' THEN 'auto_approved' ELSE 'pending' END,
       CASE WHEN route = 'auto'
                THEN 'confidence ' || to_char(confidence, 'FM0.00')
                     || ' ≥ auto-approve threshold 0.90'
            WHEN route = 'analyst'
                THEN 'confidence ' || to_char(confidence, 'FM0.00')
                     || ' between expert 0.50 and auto-approve 0.90'
            WHEN value > 4000 THEN 'member value in top 5 %%'
            ELSE 'confidence ' || to_char(confidence, 'FM0.00') || ' < expert threshold 0.50'
       END,
       %(policy)s, score * (1 + random()) * (1.1 - confidence), tier, value, score, confidence,
       now(), routed_at, CASE WHEN route = 'auto' THEN NULL
                              ELSE routed_at + interval '48 hours' END,
       NULL, NULL, NULL, '', NULL, NULL
FROM (
    SELECT p.id, p.member_id, p.score, p.confidence, m.tier,
           p.member_value AS value,
           now() - random() * interval '72 hours' AS routed_at,
           CASE WHEN p.confidence >= 0.9 THEN 'auto' WHEN p.confidence >= 0.5 THEN 'analyst'
                ELSE 'expert' END AS route
    FROM predictions_prediction p JOIN loyalty_member m ON m.id = p.member_id
    WHERE p.model_version_id = %(version)s
      AND NOT EXISTS (SELECT 1 FROM reviews_review r WHERE r.prediction_id = p.id)
) x
"""


def ensure_data(n: int) -> dict:
    from django.core.management import call_command
    from django.db import connection

    from loyalty.services.catalog import seed_action_catalog
    from predictions.ml.features import FEATURE_NAMES
    from predictions.models import ModelVersion, Prediction
    from reviews.models import Review
    from reviews.selectors.policy import current_policy

    call_command("migrate", verbosity=0)
    seed_action_catalog()
    version = ModelVersion.objects.filter(kind="churn", status="active").first()
    if version is None:
        version = ModelVersion.objects.create(
            kind="churn",
            status="active",
            algorithm="bench",
            evaluation_cutoff=CUTOFF,
            data_fingerprint="bench-pages",
            features=[
                {"code": code, "name": FEATURE_NAMES.get(code, code), "description": ""}
                for code in MODEL_FEATURES
            ],
            artifact_path="bench/pages/none",
            promoted_at=CUTOFF,
        )
    policy = current_policy("churn")
    timings = {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM loyalty_member WHERE external_id LIKE %s", [PREFIX + "%"]
        )
        if cursor.fetchone()[0] < n:
            started = time.perf_counter()
            cursor.execute(MEMBERS_SQL, {"prefix": PREFIX, "n": n})
            timings["members"] = time.perf_counter() - started
        if Prediction.objects.filter(model_version=version).count() < n:
            started = time.perf_counter()
            names = {f"n{i}": FEATURE_NAMES.get(c, c) for i, c in enumerate(TOP_FEATURES, 1)}
            cursor.execute(
                PREDICTIONS_SQL,
                {"version": version.pk, "cutoff": CUTOFF, "like": PREFIX + "%", "n": n, **names},
            )
            timings["predictions"] = time.perf_counter() - started
        if Review.objects.filter(prediction__model_version=version).count() < n:
            started = time.perf_counter()
            cursor.execute(REVIEWS_SQL, {"version": version.pk, "policy": policy.pk})
            timings["reviews"] = time.perf_counter() - started
        if timings:
            started = time.perf_counter()
            # VACUUM too: as autovacuum would have by then, it sets the visibility map, without
            # which PostgreSQL cannot use index-only scans on freshly loaded tables.
            cursor.execute(
                "VACUUM (ANALYZE) loyalty_member, predictions_prediction, reviews_review"
            )
            timings["vacuum analyze"] = time.perf_counter() - started
    return timings


def ensure_users() -> str:
    from django.contrib.auth import get_user_model

    from loyalty.services.tokens import create_api_token
    from loyalty.services.users import create_demo_users
    from reviews.services.reason_codes import seed_reason_codes

    seed_reason_codes()
    create_demo_users()
    analyst = get_user_model().objects.get(username="analyst")
    return create_api_token(user=analyst)[1]


def queue_cursor(page: int, page_size: int) -> tuple[int, str]:
    """The keyset cursor of queue page `page`: the last row of the page before it. A smaller
    database gets its last full page instead."""
    from django.db import connection

    from loyalty import keyset

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM reviews_review WHERE route = 'analyst' AND state = 'pending'"
            " AND NOT in_backlog"
        )
        page = max(2, min(page, cursor.fetchone()[0] // page_size))
        cursor.execute(
            "SELECT priority, id FROM reviews_review WHERE route = 'analyst' AND state = 'pending'"
            " AND NOT in_backlog ORDER BY priority DESC, id ASC OFFSET %s LIMIT 1",
            [(page - 1) * page_size - 1],
        )
        priority, review_id = cursor.fetchone()
    return page, keyset.encode_cursor(keyset.Cursor(key=(priority, review_id)))


def pending_analyst_ids(count: int) -> list[int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM reviews_review WHERE route = 'analyst' AND state = 'pending'"
            " AND NOT in_backlog ORDER BY random() LIMIT %s",
            [count],
        )
        return [row[0] for row in cursor.fetchall()]


def queue_explain(cursor_text: str) -> str:
    """EXPLAIN ANALYZE of the queue page's own query (the ORM's SQL, with the cursor)."""
    from django.db import connection

    from loyalty import keyset
    from reviews.models import Review
    from reviews.selectors.queue import QUEUE_FIELDS, QUEUE_ORDER

    cursor = keyset.decode_cursor(cursor_text, model=Review, ordering=QUEUE_ORDER)
    reviews = Review.objects.queued("analyst")
    reviews = reviews.filter(keyset.after(QUEUE_ORDER, cursor.key))
    query = reviews.order_by(*QUEUE_ORDER).values(*QUEUE_FIELDS)[:51]
    sql, params = query.query.sql_with_params()
    with connection.cursor() as db:
        db.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        return "\n".join(row[0] for row in db.fetchall())


# --- the server -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(port: int, args: argparse.Namespace, log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "loyalty.settings.base",
        "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    }
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "loyalty.wsgi:application",
        "--workers",
        str(args.workers),
        "--worker-class",
        args.worker_class,
        "--threads",
        str(args.threads),
        "--bind",
        f"127.0.0.1:{port}",
        "--timeout",
        "60",
        "--backlog",
        "2048",
    ]
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def http(port: int, method: str, path: str, headers=None, body=None):
    """One request on a fresh connection (sync gunicorn workers close it after each answer):
    (status, response headers, body text)."""
    connection = HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, answer.getheaders(), answer.read().decode("utf-8", "replace")
    finally:
        connection.close()


def wait_for(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}")
        try:
            http(port, "GET", "/login/")
            return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError("gunicorn did not answer in time")


def stop_gunicorn(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def cookies_of(headers) -> dict[str, str]:
    jar = SimpleCookie()
    for name, value in headers:
        if name.lower() == "set-cookie":
            jar.load(value)
    return {key: morsel.value for key, morsel in jar.items()}


def login(port: int) -> str:
    """Log the analyst in through the login form; the session cookie's value."""
    status, headers, _ = http(port, "GET", "/login/")
    csrf = cookies_of(headers).get("csrftoken")
    if status != 200 or not csrf:
        raise RuntimeError(f"login form answered {status}")
    form = urllib.parse.urlencode(
        {"username": "analyst", "password": "analyst-demo", "csrfmiddlewaretoken": csrf}
    )
    status, headers, _ = http(
        port,
        "POST",
        "/login/",
        {
            "Cookie": f"csrftoken={csrf}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Referer": f"http://127.0.0.1:{port}/login/",
        },
        form,
    )
    session = cookies_of(headers).get("sessionid")
    if status != 302 or not session:
        raise RuntimeError(f"login failed: {status}")
    return session


# --- measuring ------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def single_client(send, paths: list[str]) -> dict:
    """Sequential requests from one client; latencies in ms and the non-2xx count."""
    latencies, errors = [], 0
    for path in paths:
        started = time.perf_counter()
        status, _, _ = send(path)
        latencies.append((time.perf_counter() - started) * 1000)
        if not 200 <= status < 300:
            errors += 1
    return {
        "p50": statistics.median(latencies),
        "p95": percentile(latencies, 95),
        "errors": errors,
    }


# --- the load generator ---------------------------------------------------------------------
# Closed loop, no think time: each client sends its next request as soon as the answer to its
# last one has arrived, as wrk does. Raw HTTP/1.1 on asyncio streams, requests pre-encoded, so
# that the client costs little of the two cores it shares with the server (printed per case).

RESPONSE_TIMEOUT_S = 10.0


@dataclass
class LoadTally:
    """What the clients of one run saw."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    socket_errors: int = 0


def encode_request(
    method: str, path: str, port: int, headers: dict[str, str], body: str | None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    payload = (body or "").encode()
    if body is not None:
        lines.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; its status and whether the server keeps the connection open."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, is_chunked, keeps_alive = None, False, True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            is_chunked = b"chunked" in value
        elif name == b"connection":
            keeps_alive = value != b"close"
    if is_chunked:
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
    elif length is not None:
        await reader.readexactly(length)
    else:
        await reader.read()
        keeps_alive = False
    return status, keeps_alive


async def run_client(port: int, requests: list[bytes], deadline: float, tally: LoadTally) -> None:
    """One client: its requests in turn until the deadline, reconnecting when the server
    closes (sync gunicorn workers close after every answer, as they do for a real browser)."""
    reader = writer = None
    position = 0
    while time.perf_counter() < deadline:
        request = requests[position % len(requests)]
        position += 1
        started = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            status, keeps_alive = await asyncio.wait_for(read_response(reader), RESPONSE_TIMEOUT_S)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            tally.socket_errors += 1
            keeps_alive, status = False, None
        else:
            tally.latencies_ms.append((time.perf_counter() - started) * 1000)
            tally.statuses[status] += 1
        if not keeps_alive and writer is not None:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split()[1:9]]
    idle = fields[3] + fields[4]
    ticks = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids(parent: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                children.append(int(stat.parent.name))
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return children


def database_backend_pids() -> list[int]:
    """PostgreSQL backends serving this database, other than the bench's own connection."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


@dataclass
class ServerCpu:
    """CPU seconds of the gunicorn workers and of the database backends serving them, so that
    the cost of a request can be read whatever else the machine is doing at the time."""

    server_pid: int
    app: dict[int, float] = field(default_factory=dict)
    database: dict[int, float] = field(default_factory=dict)

    def sample(self) -> tuple[dict[int, float], dict[int, float]]:
        app = {pid: process_cpu_seconds(pid) for pid in child_pids(self.server_pid)}
        database = {pid: process_cpu_seconds(pid) for pid in database_backend_pids()}
        return app, database

    def start(self) -> None:
        self.app, self.database = self.sample()

    def spent(self) -> tuple[float, float]:
        """(app, database) CPU seconds since start()."""
        app, database = self.sample()
        return (
            sum(cpu - self.app.get(pid, 0.0) for pid, cpu in app.items()),
            sum(cpu - self.database.get(pid, 0.0) for pid, cpu in database.items()),
        )


def concurrent(
    port: int,
    paths: list[str],
    *,
    clients: int,
    duration: int,
    headers: dict[str, str],
    server_cpu: ServerCpu,
    method: str = "GET",
    body: str | None = None,
) -> dict:
    """`clients` concurrent clients for `duration` seconds; client `i` takes every
    `clients`-th path from `i`, so no two clients send the same id (the decide endpoint)."""
    encoded = [encode_request(method, path, port, headers, body) for path in paths]
    slices = [encoded[i::clients] or encoded for i in range(clients)]
    tally = LoadTally()

    async def run_all() -> None:
        deadline = time.perf_counter() + duration
        await asyncio.gather(*(run_client(port, part, deadline, tally) for part in slices))

    server_cpu.start()
    cpu_before, (busy_before, total_before) = cpu_seconds(), machine_busy_seconds()
    started = time.perf_counter()
    asyncio.run(run_all())
    elapsed = time.perf_counter() - started
    client_cpu = cpu_seconds() - cpu_before
    busy_after, total_after = machine_busy_seconds()
    app_cpu, database_cpu = server_cpu.spent()
    served = max(len(tally.latencies_ms), 1)
    machine_busy = busy_after - busy_before
    machine_total = max(total_after - total_before, 1e-9)
    others = max(machine_busy - app_cpu - database_cpu - client_cpu, 0.0)
    latencies = tally.latencies_ms or [float("nan")]
    ok = sum(n for status, n in tally.statuses.items() if 200 <= status < 300)
    return {
        "requests": len(tally.latencies_ms),
        "rps": len(tally.latencies_ms) / elapsed,
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "max": max(latencies),
        "c409": tally.statuses.get(409, 0),
        "bad": len(tally.latencies_ms) - ok - tally.statuses.get(409, 0),
        "socket_errors": tally.socket_errors,
        "client_cpu_share": client_cpu / elapsed,
        "app_cpu_ms": app_cpu / served * 1000,
        "database_cpu_ms": database_cpu / served * 1000,
        "machine_busy_share": machine_busy / machine_total,
        "others_share": others / machine_total,
    }


CASES = ("queue", "page500", "member", "approve")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--worker-class", choices=("sync", "gthread"), default="sync")
    parser.add_argument("--threads", type=int, default=1, help="per worker, gthread only")
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}"
    )
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of page 500")
    args = parser.parse_args()
    args.cases = [case for case in args.cases.split(",") if case]
    if unknown := set(args.cases) - set(CASES):
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    return args


def main() -> None:
    args = parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("Set DATABASE_URL to a PostgreSQL database (this benchmark is for PostgreSQL).")
    setup_django()
    from reviews.selectors.queue import QUEUE_PAGE_SIZE

    random.seed(SEED)
    started = time.perf_counter()
    timings = ensure_data(args.predictions)
    token = ensure_users()
    setup_seconds = time.perf_counter() - started
    detail = ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()) or "data already there"
    print(f"setup: {setup_seconds:.1f} s ({detail})")

    queue_page, cursor_text = queue_cursor(QUEUE_PAGE, QUEUE_PAGE_SIZE)
    if args.explain:
        print(queue_explain(cursor_text))
    member_ids = pending_analyst_ids(2000)
    # Enough distinct pending reviews for every decide request, none reused.
    decide_budget = SINGLE_REQUESTS + WARMUP_REQUESTS + max(2000, 400 * args.duration)
    decide_ids = pending_analyst_ids(decide_budget) if "approve" in args.cases else []
    single_decide, warm_decide = decide_ids[:SINGLE_REQUESTS], decide_ids[-WARMUP_REQUESTS:]
    load_decide = decide_ids[SINGLE_REQUESTS:-WARMUP_REQUESTS]

    from django.db import connections

    connections.close_all()
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    server = start_gunicorn(port, args, workdir / "gunicorn.log")
    rows = []
    try:
        wait_for(port, server)
        server_cpu = ServerCpu(server.pid)
        cookie = f"sessionid={login(port)}"
        approve = json.dumps({"reason_code": "model-correct"})
        api_headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

        def get(path):
            return http(port, "GET", path, {"Cookie": cookie})

        def post(path):
            return http(port, "POST", path, api_headers, approve)

        page500 = f"/reviews/?after={urllib.parse.quote(cursor_text, safe=':')}"
        status, _, text = get(page500)
        if status != 200 or "/reviews/" not in text:
            raise RuntimeError(f"queue page {queue_page} answered {status}")
        members = [f"/reviews/{pk}/" for pk in member_ids]
        cases = {
            "queue": ("queue page 1    GET /reviews/", ["/reviews/"]),
            "page500": (f"queue page {queue_page}".ljust(14) + "  GET /reviews/?after=", [page500]),
            "member": ("member page     GET /reviews/<id>/", members),
        }
        for case in args.cases:
            if case not in cases:
                continue
            label, paths = cases[case]
            for path in (paths * WARMUP_REQUESTS)[:WARMUP_REQUESTS]:
                get(path)
            single = single_client(get, (paths * SINGLE_REQUESTS)[:SINGLE_REQUESTS])
            load = concurrent(
                port,
                paths,
                clients=args.clients,
                duration=args.duration,
                headers={"Cookie": cookie},
                server_cpu=server_cpu,
            )
            rows.append((label, single, load))
            print(f"measured {case}", flush=True)

        if "approve" in args.cases:
            label = "approve         POST /api/reviews/<id>/approve/"
            for pk in warm_decide:
                post(f"/api/reviews/{pk}/approve/")
            single = single_client(post, [f"/api/reviews/{pk}/approve/" for pk in single_decide])
            load = concurrent(
                port,
                [f"/api/reviews/{pk}/approve/" for pk in load_decide],
                clients=args.clients,
                duration=args.duration,
                headers=api_headers,
                server_cpu=server_cpu,
                method="POST",
                body=approve,
            )
            if load["requests"] > len(load_decide):
                print(f"note: {load['requests']} decide requests > {len(load_decide)} ids reused")
            rows.append((label, single, load))
            print("measured approve", flush=True)
    finally:
        stop_gunicorn(server)
    purge_broker()
    report(rows, args, workdir)


def purge_broker() -> None:
    from loyalty.celery import app

    purged = app.control.purge()
    print(f"broker {os.environ['CELERY_BROKER_URL']}: purged {purged} queued task(s)")


def report(rows: list, args: argparse.Namespace, workdir: Path) -> None:
    threads = f" x {args.threads} threads" if args.worker_class == "gthread" else ""
    print()
    print(
        f"gunicorn: {args.workers} {args.worker_class} workers{threads}; machine: "
        f"{os.cpu_count()} cores; {args.clients} concurrent clients (built-in asyncio client, "
        f"closed loop) for {args.duration} s; {SINGLE_REQUESTS} sequential requests single-client"
    )
    header = (
        f"{'endpoint':<48} | {'single p50':>10} | {'single p95':>10} | "
        f"{'conc req/s':>10} | {'p50':>7} | {'p95':>7} | {'p99':>7} | {'errors':>6} | "
        f"{'409':>4} | {'app CPU/req':>11} | {'db CPU/req':>10} | {'client CPU':>10} | "
        f"{'machine busy':>12} | {'other load':>10}"
    )
    print(header)
    print("-" * len(header))
    for label, single, load in rows:
        errors = single["errors"] + load["bad"] + load["socket_errors"]
        print(
            f"{label:<48} | {single['p50']:>7.1f} ms | {single['p95']:>7.1f} ms | "
            f"{load['rps']:>10.1f} | {load['p50']:>4.0f} ms | {load['p95']:>4.0f} ms | "
            f"{load['p99']:>4.0f} ms | {errors:>6} | {load['c409']:>4} | "
            f"{load['app_cpu_ms']:>8.1f} ms | {load['database_cpu_ms']:>7.1f} ms | "
            f"{load['client_cpu_share'] * 100:>8.1f} % | "
            f"{load['machine_busy_share'] * 100:>10.1f} % | {load['others_share'] * 100:>8.1f} %"
        )
    print(
        "app / db CPU/req: CPU time of the gunicorn workers / of the PostgreSQL backends serving "
        "them, per request at load; client CPU: the load generator's own, in % of one core; "
        "machine busy: all cores, in % of the machine; other load: the part of it that was "
        "neither gunicorn, its database backends nor the load generator (another job running)"
    )
    print(
        f"targets: single-client p95 < {TARGET_SINGLE_P95_MS} ms; "
        f"p95 at {args.clients} concurrent < {TARGET_CONCURRENT_P95_MS} ms"
    )
    for label, single, load in rows:
        missed = []
        if single["p95"] >= TARGET_SINGLE_P95_MS:
            missed.append(f"single p95 {single['p95']:.0f} ms")
        if load["p95"] >= TARGET_CONCURRENT_P95_MS:
            missed.append(f"concurrent p95 {load['p95']:.0f} ms")
        print(
            f"  {label.split('  ')[0].strip():<16} "
            + ("MISSED: " + ", ".join(missed) if missed else "met")
        )
    print(f"(gunicorn log in {workdir})")


if __name__ == "__main__":
    main()
