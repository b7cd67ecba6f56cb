"""API tokens move from DRF's authtoken table, which kept each key in plain text, to
django-rest-knox, which keeps a SHA-512 digest and an expiry.

Every existing key is hashed into a knox token for the same user, so that clients keep working
with the key they have, until it expires one REST_KNOX TOKEN_TTL (API_TOKEN_TTL_DAYS) after
this migration; then the plaintext keys are deleted. The old table itself stays (empty): it
belongs to an app no longer installed. Going back deletes nothing and restores nothing: the
plaintext keys are gone, make new tokens with `manage.py drf_create_token USERNAME`.
"""

from django.db import migrations
from django.utils import timezone

OLD_TABLE = "authtoken_token"


def hash_plaintext_tokens(apps, schema_editor) -> None:
    from knox.crypto import hash_token
    from knox.settings import CONSTANTS, knox_settings

    connection = schema_editor.connection
    if OLD_TABLE not in connection.introspection.table_names():
        return
    quoted = connection.ops.quote_name(OLD_TABLE)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {connection.ops.quote_name('key')}, user_id FROM {quoted}")
        rows = cursor.fetchall()
    AuthToken = apps.get_model("knox", "AuthToken")
    ttl = knox_settings.TOKEN_TTL
    expiry = None if ttl is None else timezone.now() + ttl
    AuthToken.objects.bulk_create(
        AuthToken(
            digest=hash_token(key),
            token_key=key[: CONSTANTS.TOKEN_KEY_LENGTH],
            user_id=user_id,
            expiry=expiry,
        )
        for key, user_id in rows
    )
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {quoted}")


class Migration(migrations.Migration):
    dependencies = [
        ("loyalty", "0012_audit_kinds_for_logins"),
        ("knox", "0009_extend_authtoken_field"),
    ]

    operations = [migrations.RunPython(hash_plaintext_tokens, migrations.RunPython.noop)]
