"""Benchmark of the review pages under load, on PostgreSQL with N churn predictions.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_pages \\
        .venv/bin/python bench/pages.py --predictions 1000000 [--duration 20] [--clients 50]

Setup (idempotent, skipped when the rows are there): N members, one active churn ModelVersion,
N churn predictions and N reviews (about 60 % auto-approved, 30 % analyst pending, 10 % expert
pending), generated server-side with `INSERT ... SELECT ... generate_series` and random(); then
VACUUM (ANALYZE), reason codes, the demo users (analyst / analyst-demo) and an API token for
the analyst.

Then serves the app with gunicorn (sync workers) on a free loopback port and measures, as the
logged-in analyst: the queue's first page, queue page 500 (keyset cursor computed in SQL), a
member page (random pending analyst reviews) and the approve API (token auth, a distinct
pending analyst review per request). Each: p50/p95 of ~200 sequential requests from one client,
then `--clients` concurrent connections for `--duration` seconds with wrk (a Lua script: cookie
or token header, per-thread id slices, 409s and other non-2xx counted apart).
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
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
# Five features every explanation names, with how their values are drawn.
TOP_FEATURES = (
    "days_since_last_purchase",
    "spend_365",
    "logins_30",
    "tenure_days",
    "return_share_365",
)


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty.settings.base")
    import django

    django.setup()


# --- setup ----------------------------------------------------------------------------------

MEMBERS_SQL = """
INSERT INTO loyalty_member (external_id, joined_on, tier, points_balance, consent_profiling,
    consent_changed_at, age_band, region, erased_at, created_at, updated_at)
SELECT %(prefix)s || lpad(g::text, 8, '0'),
       date '2016-01-01' + floor(random() * 3500)::int,
       CASE WHEN u < 0.5 THEN 'bronze' WHEN u < 0.8 THEN 'silver'
            WHEN u < 0.95 THEN 'gold' ELSE 'platinum' END,
       floor(random() * 20000)::int, true, now(), '', '', NULL, now(), now()
FROM (SELECT g, random() AS u FROM generate_series(1, %(n)s) g) s
ON CONFLICT (external_id) DO NOTHING
"""

# Confidence decides the route later: >= 0.9 auto (60 %), 0.5-0.9 analyst (30 %), < 0.5 expert.
# The explanation adds up: base + top contributions + remainder = margin = logit(score).
PREDICTIONS_SQL = """
INSERT INTO predictions_prediction (member_id, model_version_id, kind, cutoff, scored_at, score,
    probabilities, interval_low, interval_high, label_set, recommended_action_id, confidence,
    explanation, feature_values)
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
       jsonb_build_object('days_since_last_purchase', dslp, 'spend_365', spend,
                          'logins_30', logins, 'tenure_days', tenure,
                          'return_share_365', rshare, 'sessions_30', sessions)
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
           (p.feature_values ->> 'spend_365')::float AS value,
           now() - random() * interval '72 hours' AS routed_at,
           CASE WHEN p.confidence >= 0.9 THEN 'auto' WHEN p.confidence >= 0.5 THEN 'analyst'
                ELSE 'expert' END AS route
    FROM predictions_prediction p JOIN loyalty_member m ON m.id = p.member_id
    WHERE p.model_version_id = %(version)s
      AND NOT EXISTS (SELECT 1 FROM reviews_review r WHERE r.prediction_id = p.id)
) x
"""


def ensure_data(n: int) -> dict:
    from django.db import connection

    from loyalty.services.catalog import seed_action_catalog
    from predictions.ml.features import FEATURE_NAMES
    from predictions.models import ModelVersion, Prediction
    from reviews.models import Review
    from reviews.services.policy import current_policy

    seed_action_catalog()
    version = ModelVersion.objects.filter(kind="churn", status="active").first()
    if version is None:
        version = ModelVersion.objects.create(
            kind="churn",
            status="active",
            algorithm="bench",
            evaluation_cutoff=CUTOFF,
            data_fingerprint="bench-pages",
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
    from rest_framework.authtoken.models import Token

    from loyalty.services.users import create_demo_users
    from reviews.services.reason_codes import seed_reason_codes

    seed_reason_codes()
    create_demo_users()
    analyst = get_user_model().objects.get(username="analyst")
    token, _ = Token.objects.get_or_create(user=analyst)
    return token.key


def queue_cursor(page: int, page_size: int) -> tuple[int, str]:
    """The keyset cursor of queue page `page`: the last row of the page before it. A smaller
    database gets its last full page instead."""
    from django.db import connection

    from reviews.selectors import Cursor

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM reviews_review WHERE route = 'analyst' AND state = 'pending'"
        )
        page = max(2, min(page, cursor.fetchone()[0] // page_size))
        cursor.execute(
            "SELECT priority, id FROM reviews_review WHERE route = 'analyst' AND state = 'pending'"
            " ORDER BY priority DESC, id ASC OFFSET %s LIMIT 1",
            [(page - 1) * page_size - 1],
        )
        priority, review_id = cursor.fetchone()
    return page, str(Cursor(priority, review_id))


def pending_analyst_ids(count: int) -> list[int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM reviews_review WHERE route = 'analyst' AND state = 'pending'"
            " ORDER BY random() LIMIT %s",
            [count],
        )
        return [row[0] for row in cursor.fetchall()]


def queue_explain(cursor_text: str) -> str:
    """EXPLAIN ANALYZE of the queue page's own query (the ORM's SQL, with the cursor)."""
    from django.db import connection

    from reviews.models import Review
    from reviews.selectors import QUEUE_FIELDS, Cursor, _after

    cursor = Cursor.parse(cursor_text)
    reviews = _after(Review.objects.filter(route="analyst", state="pending"), cursor)
    query = reviews.order_by("-priority", "pk").values(*QUEUE_FIELDS)[:51]
    sql, params = query.query.sql_with_params()
    with connection.cursor() as db:
        db.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        return "\n".join(row[0] for row in db.fetchall())


# --- the server -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(port: int, workers: int, log_path: Path) -> subprocess.Popen:
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
        str(workers),
        "--worker-class",
        "sync",
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


WRK_LUA = """
local threads = {}
local counter = 0
local paths_file = %(paths_file)s
local nthreads = %(nthreads)d
local method = %(method)s
local body = %(body)s
local headers = %(headers)s

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  paths = {}
  position = 0
  c409 = 0
  cbad = 0
  local n = 0
  for line in io.lines(paths_file) do
    if n %% nthreads == tid then table.insert(paths, line) end
    n = n + 1
  end
end

function request()
  position = position + 1
  if position > #paths then position = 1 end
  return wrk.format(method, paths[position], headers, body)
end

function response(status, headers, body)
  if status == 409 then c409 = c409 + 1
  elseif status < 200 or status >= 300 then cbad = cbad + 1 end
end

function done(summary, latency, requests)
  local t409, tbad = 0, 0
  for _, t in ipairs(threads) do
    t409 = t409 + t:get("c409")
    tbad = tbad + t:get("cbad")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests": %%d, "duration_us": %%d, "p50": %%f, "p95": %%f, "p99": %%f, ' ..
    '"max": %%f, "c409": %%d, "bad": %%d, "socket_errors": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    t409, tbad, e.connect + e.read + e.write + e.timeout))
end
"""


def lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal here


def concurrent(
    base: str,
    paths: list[str],
    *,
    clients: int,
    duration: int,
    headers: dict[str, str],
    method: str = "GET",
    body: str | None = None,
    workdir: Path,
    name: str,
) -> dict:
    """`clients` connections for `duration` seconds with wrk (closed loop, no think time)."""
    threads = min(2, clients)
    paths_file = workdir / f"{name}.paths"
    paths_file.write_text("\n".join(paths) + "\n")
    lua_headers = (
        "{" + ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items()) + "}"
    )
    script = workdir / f"{name}.lua"
    script.write_text(
        WRK_LUA
        % {
            "paths_file": lua_string(str(paths_file)),
            "nthreads": threads,
            "method": lua_string(method),
            "body": lua_string(body) if body is not None else "nil",
            "headers": lua_headers,
        }
    )
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{clients}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        base,
    ]
    output = subprocess.run(
        command, capture_output=True, text=True, timeout=duration + 60, check=True
    ).stdout
    line = next(line for line in output.splitlines() if line.startswith("BENCHJSON "))
    result = json.loads(line.removeprefix("BENCHJSON "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of page 500")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("Set DATABASE_URL to a PostgreSQL database (this benchmark is for PostgreSQL).")
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")
    setup_django()
    from reviews.selectors import QUEUE_PAGE_SIZE

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
    decide_ids = pending_analyst_ids(decide_budget)
    single_decide, warm_decide = decide_ids[:SINGLE_REQUESTS], decide_ids[-WARMUP_REQUESTS:]
    load_decide = decide_ids[SINGLE_REQUESTS:-WARMUP_REQUESTS]

    from django.db import connections

    connections.close_all()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    workdir = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    server = start_gunicorn(port, args.workers, workdir / "gunicorn.log")
    rows = []
    try:
        wait_for(port, server)
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
        cases = [
            ("queue page 1    GET /reviews/", ["/reviews/"], get),
            (f"queue page {queue_page}".ljust(14) + "  GET /reviews/?after=", [page500], get),
            ("member page     GET /reviews/<id>/", members, get),
        ]
        for label, paths, send in cases:
            for path in (paths * WARMUP_REQUESTS)[:WARMUP_REQUESTS]:
                send(path)
            single = single_client(send, (paths * SINGLE_REQUESTS)[:SINGLE_REQUESTS])
            load = concurrent(
                base,
                paths,
                clients=args.clients,
                duration=args.duration,
                headers={"Cookie": cookie},
                workdir=workdir,
                name=f"case{len(rows)}",
            )
            rows.append((label, single, load))
            print(f"measured {label.split('  ')[0].strip()}", flush=True)

        label = "approve         POST /api/reviews/<id>/approve/"
        for pk in warm_decide:
            post(f"/api/reviews/{pk}/approve/")
        single = single_client(post, [f"/api/reviews/{pk}/approve/" for pk in single_decide])
        load = concurrent(
            base,
            [f"/api/reviews/{pk}/approve/" for pk in load_decide],
            clients=args.clients,
            duration=args.duration,
            headers=api_headers,
            method="POST",
            body=approve,
            workdir=workdir,
            name="decide",
        )
        if load["requests"] > len(load_decide):
            print(f"note: {load['requests']} decide requests > {len(load_decide)} ids: ids reused")
        rows.append((label, single, load))
    finally:
        stop_gunicorn(server)

    print()
    print(
        f"gunicorn: {args.workers} sync workers; machine: {os.cpu_count()} cores; "
        f"{args.clients} concurrent clients (wrk, closed loop) for {args.duration} s; "
        f"{SINGLE_REQUESTS} sequential requests single-client"
    )
    header = (
        f"{'endpoint':<48} | {'single p50':>10} | {'single p95':>10} | "
        f"{'conc req/s':>10} | {'p50':>7} | {'p95':>7} | {'p99':>7} | {'errors':>6} | {'409':>4}"
    )
    print(header)
    print("-" * len(header))
    for label, single, load in rows:
        errors = single["errors"] + load["bad"] + load["socket_errors"]
        print(
            f"{label:<48} | {single['p50']:>7.1f} ms | {single['p95']:>7.1f} ms | "
            f"{load['rps']:>10.1f} | {load['p50']:>4.0f} ms | {load['p95']:>4.0f} ms | "
            f"{load['p99']:>4.0f} ms | {errors:>6} | "
            f"{load['c409']:>4}"
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
    print(f"(gunicorn log and wrk scripts in {workdir})")


if __name__ == "__main__":
    main()
