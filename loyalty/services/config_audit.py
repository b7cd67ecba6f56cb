"""Before and after values of configuration changed in the admin, in the audit trail.

`snapshot` reads a model instance into JSON-safe values; `record_config_change` appends one
`config_change` record holding the fields that differ between two snapshots;
`AuditedAdminMixin` does both for every add, change and delete a ModelAdmin makes. Secrets never
reach the trail: a password hash is shown only as whether one is set, and an API token's digest
(its primary key) and key prefix are left out, the token being named by its user.
"""

import datetime
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.contrib.auth.models import AbstractBaseUser, Group, Permission
from django.db import models, transaction
from knox.models import AuthToken

from loyalty.models import AuditRecord
from loyalty.services.audit import record_audit

ADD = "add"
CHANGE = "change"
DELETE = "delete"

# What a password field shows instead of its hash.
PASSWORD_SET = "<set>"
PASSWORD_UNUSABLE = "<unusable>"
PASSWORD_CHANGED = "<changed>"
PASSWORD_FIELD = "password"

# A token's digest (its primary key) and the first characters of its key (which find it): never
# shown, the token is named by the user it belongs to.
TOKEN_SECRET_FIELDS = frozenset({"digest", "token_key"})
TOKEN_SUBJECT_FIELD = "user_id"


@dataclass(frozen=True)
class Snapshot:
    """One instance's field values as the trail may show them. `secret_fingerprints` (digests
    of secret values) are kept in memory only, so that a changed password is noticed without
    its hash being written anywhere."""

    model: str
    subject: str
    values: dict[str, Any]
    unaudited_changes: frozenset[str] = frozenset()
    secret_fingerprints: dict[str, str] = field(default_factory=dict)


def snapshot(instance: models.Model) -> Snapshot:
    """The audit view of `instance`: concrete fields (foreign keys as the related pk) and
    many-to-many fields (sorted names or pks), JSON-safe. Call it on a saved instance."""
    opts = instance._meta
    omitted = _omitted_fields(instance)
    values: dict[str, Any] = {}
    fingerprints: dict[str, str] = {}
    for model_field in opts.concrete_fields:
        if model_field.name in omitted:
            continue
        value = model_field.value_from_object(instance)
        if _is_password(instance, model_field):
            fingerprints[model_field.name] = hashlib.sha256((value or "").encode()).hexdigest()
            value = _shown_password(value)
        values[model_field.name] = _json_safe(value)
    for model_field in opts.many_to_many:
        related = getattr(instance, model_field.name).all()
        if model_field.related_model is Permission:
            related = related.select_related("content_type")
        values[model_field.name] = sorted(_related_label(item) for item in related)
    return Snapshot(
        model=opts.label_lower,
        subject=f"{opts.label_lower}:{_subject_key(instance)}",
        values=values,
        # Touched by every save (auto_now): a change of these alone is no change anyone made.
        unaudited_changes=frozenset(
            model_field.name
            for model_field in opts.concrete_fields
            if getattr(model_field, "auto_now", False)
        ),
        secret_fingerprints=fingerprints,
    )


def stored_snapshot(instance: models.Model) -> Snapshot | None:
    """The snapshot of `instance` as the database holds it (an admin form has already written
    the new values onto the instance it saves); None when it is not stored."""
    pk_name = instance._meta.pk.attname
    stored = type(instance)._base_manager.filter(**{pk_name: getattr(instance, pk_name)}).first()
    return None if stored is None else snapshot(stored)


def config_change_details(*, before: Snapshot | None, after: Snapshot | None) -> dict | None:
    """The audit details of going from `before` to `after` (None: added, or deleted): all
    fields on add and delete, only those that differ on change; None when nothing differs."""
    if before is None and after is None:
        raise ValueError("A change needs a before or an after snapshot.")
    if before is None:
        return {"change": ADD, "model": after.model, "before": {}, "after": dict(after.values)}
    if after is None:
        return {"change": DELETE, "model": before.model, "before": dict(before.values), "after": {}}
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    for name, value in after.values.items():
        if name in after.unaudited_changes:
            continue
        if name in after.secret_fingerprints:
            if after.secret_fingerprints[name] == before.secret_fingerprints.get(name):
                continue
            old[name] = before.values.get(name)
            replaced = old[name] == PASSWORD_SET and value == PASSWORD_SET
            new[name] = PASSWORD_CHANGED if replaced else value
        elif before.values.get(name) != value:
            old[name] = before.values.get(name)
            new[name] = value
    if not new:
        return None
    return {"change": CHANGE, "model": after.model, "before": old, "after": new}


def record_config_change(
    *,
    actor: AbstractBaseUser | None,
    before: Snapshot | None,
    after: Snapshot | None,
) -> AuditRecord | None:
    """Append the `config_change` record of going from `before` to `after`; a save that
    changed nothing records nothing. Call it inside the transaction of the change."""
    details = config_change_details(before=before, after=after)
    if details is None:
        return None
    return record_audit(
        kind=AuditRecord.Kind.CONFIG_CHANGE,
        actor=actor,
        subject=(after or before).subject,
        details=details,
    )


@contextmanager
def audited_bulk_change(
    *, actor: AbstractBaseUser | None, queryset: models.QuerySet
) -> Iterator[None]:
    """Around a bulk update of `queryset` (an admin action calling `update()`, which no save
    sees): one `config_change` record per row that the update changed."""
    with transaction.atomic(using=queryset.db):
        rows = list(queryset)
        befores = [snapshot(row) for row in rows]
        yield
        for before, row in zip(befores, rows, strict=True):
            row.refresh_from_db()
            record_config_change(actor=actor, before=before, after=snapshot(row))


def _is_password(instance: models.Model, model_field: models.Field) -> bool:
    return isinstance(instance, AbstractBaseUser) and model_field.name == PASSWORD_FIELD


def _is_token(instance: models.Model) -> bool:
    return isinstance(instance, AuthToken)


def _omitted_fields(instance: models.Model) -> frozenset[str]:
    """Secret values the trail never holds: a token's digest and key prefix, and whatever a
    model lists in `AUDIT_OMITTED_FIELDS` (e.g. a webhook endpoint's encrypted secrets)."""
    if _is_token(instance):
        return TOKEN_SECRET_FIELDS
    return frozenset(getattr(instance, "AUDIT_OMITTED_FIELDS", ()))


def _subject_key(instance: models.Model) -> Any:
    if _is_token(instance):
        return getattr(instance, TOKEN_SUBJECT_FIELD)
    return instance.pk


def _shown_password(encoded: str | None) -> str:
    if not encoded or encoded.startswith(UNUSABLE_PASSWORD_PREFIX):
        return PASSWORD_UNUSABLE
    return PASSWORD_SET


def _related_label(item: models.Model) -> Any:
    if isinstance(item, Permission):
        return f"{item.content_type.app_label}.{item.codename}"
    if isinstance(item, Group):
        return item.name
    return item.pk


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    return str(value)  # UUIDs, durations, time zones


class AuditedAdminMixin:
    """Put before `admin.ModelAdmin` (or a subclass of it): every add, change and delete made
    through the admin leaves one `config_change` record with before and after values, by the
    person who made it.

    The form has already written the new values onto the instance that `save_model` gets, so
    the before values are read from the database there; many-to-many fields are saved in
    `save_related`, so the record is written after it.
    """

    def save_model(self, request, obj, form, change) -> None:
        setattr(obj, _BEFORE_ATTRIBUTE, stored_snapshot(obj) if change else None)
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        obj = form.instance
        before = obj.__dict__.pop(_BEFORE_ATTRIBUTE, None)
        # As stored, not as the form cleaned it ("6" for a cost the database holds as 6.00).
        record_config_change(actor=request.user, before=before, after=stored_snapshot(obj))

    def delete_model(self, request, obj) -> None:
        before = snapshot(obj)
        super().delete_model(request, obj)
        record_config_change(actor=request.user, before=before, after=None)

    def delete_queryset(self, request, queryset) -> None:
        with transaction.atomic(using=queryset.db):
            befores = [snapshot(obj) for obj in queryset]
            super().delete_queryset(request, queryset)
            for before in befores:
                record_config_change(actor=request.user, before=before, after=None)


# Carries the before snapshot from `save_model` to `save_related` on the instance being saved
# (one ModelAdmin serves every request, so it cannot live on the admin).
_BEFORE_ATTRIBUTE = "_config_audit_before"
