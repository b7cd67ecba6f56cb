"""`manage.py promote VERSION` / `manage.py promote --rollback --kind KIND`."""

from django.core.management.base import BaseCommand, CommandError

from loyalty.exceptions import DomainError
from predictions.models import ModelVersion, PredictionKind
from predictions.services.registry import promote_model_version, rollback_model_version


class Command(BaseCommand):
    help = "Make a model version active, or roll a kind back to its previous active version."

    def add_arguments(self, parser) -> None:
        parser.add_argument("version", nargs="?", type=int, help="model version id to promote")
        parser.add_argument("--rollback", action="store_true")
        parser.add_argument("--kind", choices=PredictionKind.values)
        parser.add_argument(
            "--no-rescore",
            action="store_true",
            help="do not score the members with the newly active version",
        )

    def handle(self, *args, **options) -> None:
        rescore = not options["no_rescore"]
        try:
            if options["rollback"]:
                if not options["kind"]:
                    raise CommandError("--rollback needs --kind.")
                version = rollback_model_version(kind=options["kind"], actor=None, rescore=rescore)
            elif options["version"]:
                version = promote_model_version(
                    version_id=options["version"], actor=None, rescore=rescore
                )
            else:
                raise CommandError("Give a version id to promote, or --rollback --kind KIND.")
        except ModelVersion.DoesNotExist as error:
            raise CommandError(f"No model version {options['version']}.") from error
        except DomainError as error:
            raise CommandError(error.message) from error
        self.stdout.write(f"Active {version.kind} version: {version.pk} ({version.algorithm}).")
        if rescore:
            self.stdout.write("Scoring every member with it in the background (Celery).")
