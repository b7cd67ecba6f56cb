"""The model registry: one active version per kind, promotion, rollback, artifact checksums."""

from pathlib import Path

import pytest
from django.db import IntegrityError, transaction

from loyalty.exceptions import PermissionDeniedError
from loyalty.models import AuditRecord
from predictions.exceptions import NothingToRollBackToError
from predictions.ml.contracts import CorruptArtifactError
from predictions.models import ModelVersion
from predictions.services.registry import promote_model_version, rollback_model_version
from predictions.services.scoring.predict import load_bundle
from predictions.services.training import train_churn_version
from tests.predictions.conftest import CUTOFF, FAST_CHURN, HORIZON

pytestmark = pytest.mark.django_db(transaction=True)


def _version(**fields) -> ModelVersion:
    defaults = dict(
        kind="churn",
        algorithm="xgboost",
        evaluation_cutoff=CUTOFF,
        data_fingerprint="0" * 64,
        artifact_path="/nonexistent",
    )
    return ModelVersion.objects.create(**{**defaults, **fields})


def test_the_database_refuses_a_second_active_version_of_a_kind():
    _version(status="active")
    _version(status="active", kind="next_action")  # another kind may have its own

    with pytest.raises(IntegrityError), transaction.atomic():
        _version(status="active")

    assert ModelVersion.objects.filter(kind="churn", status="active").count() == 1


def test_promote_retires_the_previous_version_and_is_audited(make_user):
    admin = make_user("admin")
    first, second = _version(), _version()
    promote_model_version(version_id=first.pk, actor=admin)

    promote_model_version(version_id=second.pk, actor=admin)

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("retired", "active")
    assert second.promoted_by == admin
    records = AuditRecord.objects.filter(kind="promotion").order_by("id")
    assert [r.details for r in records] == [
        {"kind": "churn", "promoted": first.pk, "retired": None},
        {"kind": "churn", "promoted": second.pk, "retired": first.pk},
    ]


def test_rollback_restores_the_version_active_before(make_user):
    admin = make_user("admin")
    first, second = _version(), _version()
    promote_model_version(version_id=first.pk, actor=admin)
    promote_model_version(version_id=second.pk, actor=admin)

    restored = rollback_model_version(kind="churn", actor=admin)

    second.refresh_from_db()
    assert (restored.pk, restored.status, second.status) == (first.pk, "active", "retired")
    assert AuditRecord.objects.get(kind="rollback").details == {
        "kind": "churn",
        "restored": first.pk,
        "retired": second.pk,
    }


def test_rollback_with_no_earlier_version_is_a_clear_conflict(make_user):
    only = _version()
    promote_model_version(version_id=only.pk, actor=None)

    with pytest.raises(NothingToRollBackToError):
        rollback_model_version(kind="churn", actor=make_user("admin"))

    only.refresh_from_db()
    assert only.status == "active"


def test_an_analyst_cannot_promote(make_user):
    version = _version()

    with pytest.raises(PermissionDeniedError):
        promote_model_version(version_id=version.pk, actor=make_user("analyst"))

    version.refresh_from_db()
    assert version.status == "candidate"
    assert not AuditRecord.objects.filter(kind="promotion").exists()


def test_training_registers_a_candidate_with_lineage_and_verified_artifacts(generated_members):
    outcome = train_churn_version(cutoff=CUTOFF, horizon_days=HORIZON, config=FAST_CHURN)

    version = outcome.version
    assert version.status == "candidate"
    assert version.horizon_days == HORIZON
    assert len(version.training_cutoffs) == 4
    assert len(version.data_fingerprint) == 64
    assert version.features and {"code", "name", "description"} <= set(version.features[0])
    assert "xgboost-cpu" in version.library_versions
    assert set(version.metrics["baselines"]) == {"recency", "rfm_logistic", "bgnbd"}
    files = sorted(path.name for path in Path(version.artifact_path).iterdir())
    assert files == sorted(version.artifact_checksums)


def test_a_corrupted_artifact_fails_loudly_on_load(generated_members):
    version = train_churn_version(cutoff=CUTOFF, horizon_days=HORIZON, config=FAST_CHURN).version
    victim = Path(version.artifact_path) / sorted(version.artifact_checksums)[0]
    victim.write_bytes(victim.read_bytes() + b" ")

    with pytest.raises(CorruptArtifactError):
        load_bundle(version.pk, tuple(sorted(version.artifact_checksums.items())))


def test_a_promotion_while_both_kinds_are_active_rescores_one_cycle_next_action_first(
    make_user,
):
    from predictions.models import ScoringRun

    admin = make_user("admin")
    _version(kind="next_action", status="active")

    promote_model_version(version_id=_version().pk, actor=admin, rescore=True)

    runs = list(ScoringRun.objects.order_by("pk").values_list("model_version__kind", "cutoff"))
    # The cases wait for next action's run: it is started first, at the churn run's cutoff.
    assert [kind for kind, _ in runs] == ["next_action", "churn"]
    assert runs[0][1] == runs[1][1]


def test_a_promotion_of_the_only_active_kind_rescores_that_kind(make_user):
    from predictions.models import ScoringRun

    promote_model_version(version_id=_version().pk, actor=make_user("admin"), rescore=True)

    assert list(ScoringRun.objects.values_list("model_version__kind", flat=True)) == ["churn"]
