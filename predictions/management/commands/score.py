"""`manage.py score`: score the scorable members with the active versions, with progress."""

import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from predictions.exceptions import NoActiveModelError
from predictions.models import PredictionKind, ScoringChunk, ScoringRun
from predictions.services.scoring.runs import (
    CYCLE_ORDER,
    DEFAULT_CHUNK_SIZE,
    score_chunk,
    start_cycle,
)

POLL_SECONDS = 0.5


class Command(BaseCommand):
    help = "Score members with the active model version of each kind (parallel Celery chunks)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--kind", choices=[*PredictionKind.values, "all"], default="all")
        parser.add_argument("--members", type=int, help="score only the first N members")
        parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE)
        parser.add_argument(
            "--inline",
            action="store_true",
            help="score the chunks in this process instead of queueing them for workers",
        )

    def handle(self, *args, **options) -> None:
        # Every kind: one cycle, one cutoff, next action first (`runs.start_cycle`).
        kinds = CYCLE_ORDER if options["kind"] == "all" else [options["kind"]]
        try:
            runs = start_cycle(
                kinds=kinds,
                member_limit=options["members"],
                chunk_size=options["chunk_size"],
                enqueue=not options["inline"],
            )
        except NoActiveModelError as error:
            raise CommandError(f"{error.message} Train and promote one first.") from error
        for run in runs:
            if options["inline"]:
                for chunk_id in run.chunks.values_list("pk", flat=True):
                    score_chunk(chunk_id=chunk_id)
            self._follow(run)

    def _follow(self, run: ScoringRun) -> None:
        with tqdm(
            total=run.members_total, desc=f"scoring {run.model_version}", unit=" members"
        ) as bar:
            while True:
                run.refresh_from_db()
                done = run.members_scored + run.members_skipped_no_consent
                bar.update(done - bar.n)
                if run.status in (ScoringRun.Status.DONE, ScoringRun.Status.FAILED):
                    break
                time.sleep(POLL_SECONDS)
        if run.status == ScoringRun.Status.FAILED:
            raise CommandError(f"Scoring run {run.pk} failed: {run.error}")
        pending = run.chunks.exclude(status=ScoringChunk.Status.DONE).count()
        self.stdout.write(
            f"Run {run.pk}: {run.members_scored} scored, {run.members_skipped_no_consent} "
            f"skipped (no consent), {pending} chunks pending, cutoff {run.cutoff:%Y-%m-%d}."
        )
