"""Admin for the model registry: versions with promote and rollback actions, runs, predictions."""

from django.contrib import admin, messages

from loyalty.exceptions import DomainError
from predictions.models import ModelVersion, Prediction, ScoringRun
from predictions.services.registry import promote_model_version, rollback_model_version


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "kind",
        "status",
        "algorithm",
        "evaluation_cutoff",
        "created_at",
        "promoted_at",
        "promoted_by",
    ]
    list_filter = ["kind", "status"]
    actions = ["promote", "roll_back"]
    readonly_fields = [field.name for field in ModelVersion._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # versions come from training, never typed in

    @admin.action(description="Promote the selected version to active", permissions=["promote"])
    def promote(self, request, queryset) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version.", messages.ERROR)
            return
        version = promote_model_version(version_id=queryset.get().pk, actor=request.user)
        self.message_user(request, f"{version} is now active.", messages.SUCCESS)

    @admin.action(description="Roll back to the previously active version", permissions=["promote"])
    def roll_back(self, request, queryset) -> None:
        for kind in sorted(set(queryset.values_list("kind", flat=True))):
            try:
                version = rollback_model_version(kind=kind, actor=request.user)
            except DomainError as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                self.message_user(request, f"{version} is active again.", messages.SUCCESS)

    def has_promote_permission(self, request) -> bool:
        return request.user.has_perm("predictions.promote_modelversion")


@admin.register(ScoringRun)
class ScoringRunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "model_version",
        "cutoff",
        "status",
        "members_total",
        "members_scored",
        "members_skipped_no_consent",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status"]
    readonly_fields = [field.name for field in ScoringRun._meta.fields]


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ["id", "member", "kind", "model_version", "cutoff", "score", "confidence"]
    list_filter = ["kind"]
    raw_id_fields = ["member", "model_version", "recommended_action"]
    search_fields = ["member__external_id"]
    show_full_result_count = False
