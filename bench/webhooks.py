"""Webhook delivery: throughput to a local receiver, and commit-to-delivery latency through a
real Celery worker.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_webhooks \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/9 \\
        .venv/bin/python bench/webhooks.py --events 2000 --latency-events 200

Runs `migrate` on the configured database (its name must start with "bench", or be a SQLite
file), adds one endpoint pointing at a receiver on 127.0.0.1 (a threaded HTTP server in this
process answering 200 at once), and removes what it wrote at the end.

1. Throughput: N `decision.created` events emitted in one transaction, then fanned out and
   delivered by `deliver_due` in this process (one HTTP client, signing every request, one
   attempt row each), as the sweep does: events per second, end to end.
2. Latency: a real worker (`celery -A loyalty worker --pool=solo`, a subprocess on the
   configured broker) runs the delivery task each commit queues; one event per transaction,
   one after another; for each, the time from the commit to the request arriving at the
   receiver. Prints p50 / p95 / max. (The decision itself, before its commit, is not counted:
   that is the review page's cost.)
"""

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class _Receiver:
    def __init__(self):
        self.arrivals: dict[str, float] = {}
        arrivals = self.arrivals

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length", 0)))
                arrivals.setdefault(self.headers["webhook-id"], time.perf_counter())
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hooks"


def _setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty.settings.base")
    os.environ["WEBHOOK_ALLOW_PRIVATE_TARGETS"] = "true"
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    database = settings.DATABASES["default"]
    name = str(database["NAME"])
    if database["ENGINE"].endswith("postgresql") and not name.startswith("bench"):
        sys.exit(f"refusing to write to {name!r}: the database name must start with 'bench'")
    call_command("migrate", verbosity=0)


def _throughput(endpoint, receiver: _Receiver, events: int) -> float:
    from django.db import transaction

    from integrations.services.delivery import deliver_due, fan_out
    from loyalty import outbox

    with transaction.atomic():
        outbox.emit_many(
            outbox.Emission(type=outbox.DECISION_CREATED, data={"decision_id": number})
            for number in range(events)
        )
    started = time.perf_counter()
    while fan_out(limit=5000):
        pass
    while deliver_due():
        pass
    elapsed = time.perf_counter() - started
    return events / elapsed


def _latencies(receiver: _Receiver, events: int) -> list[float]:
    from django.db import transaction

    from integrations.services.delivery import message_id
    from loyalty import outbox

    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "loyalty", "worker", "--pool=solo",
         "--loglevel=WARNING", "--without-mingle", "--without-gossip"],
        cwd=ROOT,
        env={**os.environ},
    )  # fmt: skip
    try:
        warm = _emit_one(transaction, outbox)
        _wait_for(receiver, message_id(warm), timeout=120)  # the worker is up
        latencies = []
        for _ in range(events):
            event = _emit_one(transaction, outbox)
            committed = time.perf_counter()
            arrived = _wait_for(receiver, message_id(event), timeout=60)
            latencies.append((arrived - committed) * 1000)
        return latencies
    finally:
        worker.terminate()
        worker.wait(timeout=60)


def _emit_one(transaction, outbox):
    with transaction.atomic():
        return outbox.emit(outbox.DECISION_CREATED, {"decision_id": 0})


def _wait_for(receiver: _Receiver, webhook_id: str, *, timeout: float) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if webhook_id in receiver.arrivals:
            return receiver.arrivals[webhook_id]
        time.sleep(0.001)
    raise SystemExit(f"event {webhook_id} did not arrive within {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--latency-events", type=int, default=200)
    args = parser.parse_args()
    _setup_django()
    from django.db import connection

    from integrations.services import endpoints
    from loyalty.models import OutboxEvent

    receiver = _Receiver()
    endpoint = endpoints.create_endpoint(actor=None, url=receiver.url).endpoint
    before = OutboxEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    try:
        rate = _throughput(endpoint, receiver, args.events)
        print(f"database: {connection.vendor}; receiver: {receiver.url}")
        print(f"throughput: {args.events} events delivered at {rate:,.0f} events/s "
              "(fan-out, signing, HTTP, attempt rows; one process)")  # fmt: skip
        if args.latency_events:
            latencies = sorted(_latencies(receiver, args.latency_events))
            p50 = statistics.median(latencies)
            p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)]
            print(f"commit to delivery through a worker, {len(latencies)} events: "
                  f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {latencies[-1]:.1f} ms")  # fmt: skip
    finally:
        endpoints.delete_endpoint(actor=None, endpoint_id=endpoint.pk)
        OutboxEvent.objects.filter(pk__gt=before).delete()


if __name__ == "__main__":
    main()
