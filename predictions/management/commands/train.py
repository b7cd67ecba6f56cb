"""`manage.py train`: train a model version on the imported data and print its evaluation."""

import json
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from predictions.exceptions import TrainingDataError
from predictions.management.progress import add_progress_argument, training_progress
from predictions.models import PredictionKind
from predictions.services.registry import promote_model_version
from predictions.services.training import (
    default_training_cutoff,
    train_churn_version,
    train_next_action_version,
)

METRIC_ROWS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "coverage", "base_rate", "n")
NEXT_ACTION_ROWS = ("top1", "top3", "log_loss", "coverage", "mean_set_size", "n")


class Command(BaseCommand):
    help = (
        "Train on data before --cutoff, evaluate out of time at --cutoff, register a candidate "
        "version, and print the metrics of the model, the sequence model and the ensemble (churn, "
        "when trained) and the baselines."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--kind", choices=PredictionKind.values, default=PredictionKind.CHURN)
        parser.add_argument(
            "--cutoff",
            type=_date,
            help="YYYY-MM-DD (UTC); default: the end of the data less the horizon for churn "
            "(so that the evaluation window is complete), the end of the data for next action",
        )
        parser.add_argument("--horizon", type=int, default=90, help="churn horizon in days")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument("--promote", action="store_true", help="make it the active version")
        add_progress_argument(parser)

    def handle(self, *args, **options) -> None:
        kind, horizon = options["kind"], options["horizon"]
        cutoff = options["cutoff"] or default_training_cutoff(kind=kind, horizon_days=horizon)
        progress = training_progress(self, options)
        try:
            if kind == PredictionKind.CHURN:
                outcome = train_churn_version(
                    cutoff=cutoff, horizon_days=horizon, progress=progress
                )
            else:
                outcome = train_next_action_version(cutoff=cutoff, progress=progress)
        except TrainingDataError as error:
            raise CommandError(f"Cannot train: {error.message}") from error
        finally:
            if progress is not None:
                progress.close()
        version = outcome.version
        if options["promote"]:
            version = promote_model_version(version_id=version.pk, actor=None)
        if options["json"]:
            self.stdout.write(json.dumps({"version": version.pk, **outcome.report}, indent=2))
            return
        self.stdout.write(f"Registered {version} (algorithm: {version.algorithm}).")
        self._print_table(outcome.report)

    def _print_table(self, report: dict) -> None:
        if "by_source" in report:  # next best action: held-out metrics overall and per source
            entries = {"all": report["metrics"], **report["by_source"]}
            self._print_rows(entries, NEXT_ACTION_ROWS)
            return
        entries = {"model": report.get("model", {})}
        # The sequence model and the ensemble, when this version trained them.
        entries.update({k: report[k] for k in ("ensemble", "sequence") if report.get(k)})
        entries.update(report.get("baselines", {}))
        if not any(entries.values()):
            reason = report.get("evaluation", {}).get("reason", "no evaluation")
            self.stdout.write(f"No out-of-time evaluation: {reason}")
            return
        self._print_rows(entries, METRIC_ROWS)
        sequence = report.get("sequence_model") or {}
        if sequence and not sequence.get("trained"):
            self.stdout.write(f"No sequence model: {sequence.get('reason')}")

    def _print_rows(self, entries: dict, metrics: tuple[str, ...]) -> None:
        self.stdout.write(f"{'metric':<14}" + "".join(f"{name:>14}" for name in entries))
        for metric in metrics:
            cells = "".join(_cell(entry.get(metric)) for entry in entries.values())
            self.stdout.write(f"{metric:<14}{cells}")


def _cell(value) -> str:
    if value is None:
        return f"{'–':>14}"
    if isinstance(value, float):
        return f"{value:>14.4f}"
    return f"{value!s:>14}"


def _date(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError as error:
        raise CommandError(f"--cutoff must be YYYY-MM-DD, got {text!r}") from error
