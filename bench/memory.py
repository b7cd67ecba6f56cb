"""Peak memory and time of training and scoring at N generated members, on DATABASE_URL.

    createdb -h 127.0.0.1 -U postgres bench_memory
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_memory \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/13 \\
        .venv/bin/python bench/memory.py --members 50000 200000

For each size, smallest first, the database grows to it: generated members (generate_members,
seed BENCH_SEED, as bench/score.py; the members of a smaller size are the first ones of a
larger one). Then, each in its own process, measured by that process's own rusage (peak
resident set of the process and the children it waited for) and wall time:
- `manage.py train --kind churn --json --promote`: churn training on every member, with the
  report's row budget (members per cutoff, active and kept) printed;
- scoring the whole population with the active churn version: one scoring run split into
  chunks (`start_scoring_run`, chunks of --chunk-size members, Celery tasks), worked by 1 and
  then by 2 `celery -A loyalty worker --concurrency 1` processes on CELERY_BROKER_URL (a real
  broker: Redis or RabbitMQ). Its time runs from the run's start to its last chunk done; the
  routing task that a finished run queues is not part of it (the workers are stopped and the
  queue purged once the run is done). Each run scores at a cutoff one second after the
  previous one, so that every run writes all its predictions.
`--max-training-rows N` trains with that row budget instead of the default (the service
`train_churn_version` in a child process, as `train` calls it): a way to see training's peak
memory once the budget binds, at sizes smaller than the default budget needs.
`--max-rss-gib` stops any of them whose process tree grows past it (the machine is shared),
and says so. A size whose training is stopped is not scored.
"""

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_SEED = 4242
DAYS = 365
HORIZON = 90
DEFAULT_MAX_RSS_GIB = 16.0
WATCH_SECONDS = 0.5
WORKER_READY_TIMEOUT = 120
KIB = 1024


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyalty.settings.base")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)  # a fresh database works too


@dataclass
class Measured:
    label: str
    seconds: float
    peak_rss_mib: float
    tree_peak_mib: float
    cpu_seconds: float
    returncode: int
    stopped_for_memory: bool
    stdout: str = ""


def _tree_rss_kib(root: int) -> int:
    """Resident memory of `root` and its descendants, from /proc (no psutil here)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


class Watched:
    """A subprocess whose tree is stopped when it grows past a limit; `finish` waits for it
    and returns its own rusage (ru_maxrss: the biggest of it and its waited-for children)."""

    def __init__(self, label: str, command: list[str], limit_kib: int, capture: bool = False):
        self.label = label
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            text=True,
        )
        self.limit_kib = limit_kib
        self.stopped_for_memory = False
        self.tree_peak_kib = 0
        self._done = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._done.wait(WATCH_SECONDS):
            rss = _tree_rss_kib(self.process.pid)
            self.tree_peak_kib = max(self.tree_peak_kib, rss)
            if rss > self.limit_kib and not self.stopped_for_memory:
                self.stopped_for_memory = True
                os.killpg(self.process.pid, signal.SIGKILL)

    def alive(self) -> bool:
        """Still running (asked without reaping it, so that `finish` gets its rusage)."""
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        return os.waitid(os.P_PID, self.process.pid, flags) is None

    def signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.process.pid, signum)

    def finish(self) -> Measured:
        out = self.process.stdout.read() if self.process.stdout else ""
        _, status, usage = os.wait4(self.process.pid, 0)
        seconds = time.perf_counter() - self.started
        self._done.set()
        self.process.returncode = os.waitstatus_to_exitcode(status)
        return Measured(
            label=self.label,
            seconds=seconds,
            peak_rss_mib=usage.ru_maxrss / KIB,
            tree_peak_mib=self.tree_peak_kib / KIB,
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            returncode=self.process.returncode,
            stopped_for_memory=self.stopped_for_memory,
            stdout=out,
        )


def manage(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "manage.py"), *args]


def grow_to(members: int, limit_kib: int) -> Measured | None:
    from loyalty.models import Member
    from loyalty.services.catalog import seed_action_catalog

    seed_action_catalog()
    if Member.objects.count() >= members:
        return None
    watched = Watched(
        "generate",
        manage("generate_members", "--members", str(members), "--seed", str(BENCH_SEED)),
        limit_kib,
    )
    return watched.finish()


def train(limit_kib: int, max_training_rows: int | None) -> tuple[Measured, dict]:
    command = manage("train", "--kind", "churn", "--json", "--promote", "--no-progress")
    if max_training_rows is not None:
        command = [sys.executable, __file__, "--train-child", str(max_training_rows)]
    measured = Watched("train churn", command, limit_kib, capture=True).finish()
    report = {}
    if measured.returncode == 0:
        report = json.loads(measured.stdout)
    return measured, report


def train_child(max_training_rows: int) -> None:
    """What `train --kind churn --json --promote` does, with another row budget."""
    from dataclasses import replace

    from predictions.ml.contracts import ChurnConfig
    from predictions.services.registry import promote_model_version
    from predictions.services.training import default_training_cutoff, train_churn_version

    outcome = train_churn_version(
        cutoff=default_training_cutoff(kind="churn", horizon_days=HORIZON),
        horizon_days=HORIZON,
        config=replace(ChurnConfig(), max_training_rows=max_training_rows),
    )
    version = promote_model_version(version_id=outcome.version.pk, actor=None)
    print(json.dumps({"version": version.pk, **outcome.report}))


def score_with_workers(workers: int, chunk_size: int, limit_kib: int) -> tuple[float, list]:
    """(seconds from the run's start to its last chunk done, each worker's Measured)."""
    from django.db.models import Max

    from loyalty.celery import app
    from loyalty.clock import scoring_clock
    from predictions.models import ScoringRun
    from predictions.services.scoring.predict import active_version
    from predictions.services.scoring.runs import start_scoring_run

    app.control.purge()
    names = [f"bench-memory-{i}-{os.getpid()}@%h" for i in range(workers)]
    watched = [
        Watched(
            f"worker {i + 1}/{workers}",
            [
                str(Path(sys.executable).parent / "celery"),
                "-A",
                "loyalty",
                "worker",
                "--concurrency",
                "1",
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
                "-n",
                name,
            ],
            limit_kib,
        )
        for i, name in enumerate(names)
    ]
    deadline = time.monotonic() + WORKER_READY_TIMEOUT
    while len(app.control.ping(timeout=1.0) or []) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError("the Celery workers did not answer a ping in time")
    version = active_version("churn")
    latest = ScoringRun.objects.filter(model_version=version).aggregate(at=Max("cutoff"))["at"]
    cutoff = scoring_clock()
    if latest is not None and latest >= cutoff:
        cutoff = latest + timedelta(seconds=1)
    started = time.perf_counter()
    run = start_scoring_run(kind="churn", cutoff=cutoff, chunk_size=chunk_size)
    while True:
        run.refresh_from_db()
        if run.status != ScoringRun.Status.RUNNING:
            break
        if any(w.stopped_for_memory or not w.alive() for w in watched):
            break
        time.sleep(0.5)
    seconds = time.perf_counter() - started
    if run.status != ScoringRun.Status.DONE:
        print(f"  scoring run {run.pk} ended {run.status}: {run.error or 'a worker stopped'}")
    for worker in watched:  # cold shutdown: the routing task the run queued is not measured
        worker.signal(signal.SIGQUIT)
    measured = [worker.finish() for worker in watched]
    app.control.purge()
    return seconds, measured


def _line(m: Measured) -> str:
    state = " STOPPED: over the memory limit" if m.stopped_for_memory else ""
    if m.returncode not in (0, -signal.SIGQUIT) and not m.stopped_for_memory:
        state = f" exit {m.returncode}"
    return (
        f"  {m.label:<14} wall {m.seconds:8.1f} s  cpu {m.cpu_seconds:8.1f} s  "
        f"peak RSS {m.peak_rss_mib:8.0f} MiB (process tree, sampled: {m.tree_peak_mib:.0f}){state}"
    )


def _budget_lines(report: dict) -> list[str]:
    budget = report.get("row_budget") or {}
    if not budget:
        return ["  (the report has no row budget)"]
    counts = budget["cutoffs"]
    active = [c["active"] for c in counts.values()]
    kept = [c["kept"] for c in counts.values()]
    rows = report.get("rows", {})
    return [
        f"  row budget: {budget['rows_per_cutoff']:,} members per cutoff "
        f"({budget['max_rows']:,} rows over {len(counts)} cutoffs); sampled: {budget['sampled']}",
        f"  active per cutoff {min(active):,}-{max(active):,}, kept {min(kept):,}-{max(kept):,}; "
        f"rows: train {rows.get('train', 0):,}, validation {rows.get('validation', 0):,}, "
        f"calibration {rows.get('calibration', 0):,}, evaluation {rows.get('evaluation', 0):,}",
        f"  served: {report.get('selected')}; out-of-time ROC AUC of xgboost "
        f"{(report.get('model') or {}).get('roc_auc')}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[50_000])
    parser.add_argument("--chunk-size", type=int, default=None, help="scoring chunk size")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="Celery worker counts to score with"
    )
    parser.add_argument("--max-rss-gib", type=float, default=DEFAULT_MAX_RSS_GIB)
    parser.add_argument("--skip-scoring", action="store_true")
    parser.add_argument("--max-training-rows", type=int, default=None)
    parser.add_argument("--train-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    setup_django()
    if args.train_child is not None:
        train_child(args.train_child)
        return

    from django.conf import settings
    from django.db import connection

    from loyalty.models import Event, Member
    from predictions.services.scoring.runs import DEFAULT_CHUNK_SIZE

    broker = settings.CELERY_BROKER_URL
    if not args.skip_scoring and broker.startswith("filesystem://"):
        parser.error("scoring with several workers needs a real broker: set CELERY_BROKER_URL")
    limit_kib = int(args.max_rss_gib * 2**20)
    chunk_size = args.chunk_size or DEFAULT_CHUNK_SIZE
    print(
        f"database: {connection.vendor} {connection.settings_dict['NAME']}; broker {broker}; "
        f"{os.cpu_count()} cores; memory limit per process tree {args.max_rss_gib:g} GiB",
        flush=True,
    )
    for size in sorted(args.members):
        generated = grow_to(size, limit_kib)
        members, events = Member.objects.count(), Event.objects.count()
        print(f"\n{members:,} members, {events:,} events", flush=True)
        if generated is not None:
            print(_line(generated), flush=True)
        trained, report = train(limit_kib, args.max_training_rows)
        print(_line(trained), flush=True)
        if trained.returncode != 0:
            continue
        for line in _budget_lines(report):
            print(line, flush=True)
        if args.skip_scoring:
            continue
        for workers in args.workers:
            seconds, measured = score_with_workers(workers, chunk_size, limit_kib)
            print(
                f"  scoring with {workers} worker(s): {seconds:.1f} s, "
                f"{members / seconds:,.0f} members/s (chunks of {chunk_size:,})",
                flush=True,
            )
            for worker in measured:
                print("  " + _line(worker), flush=True)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB
    print(f"\nthis process (run, follow): peak RSS {own:.0f} MiB")


if __name__ == "__main__":
    main()
