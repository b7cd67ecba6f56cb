"""Endpoint signing secrets: made here, stored encrypted (Fernet, from `cryptography`), read
back only to sign. The key is WEBHOOK_ENCRYPTION_KEY when set (a Fernet key; keep it apart
from the database backups), otherwise derived from SECRET_KEY with HKDF, so that a copy of the
database alone cannot sign as the product."""

import base64
import secrets

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def decrypt(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()


def _fernet() -> Fernet:
    configured = getattr(settings, "WEBHOOK_ENCRYPTION_KEY", "")
    if configured:
        return Fernet(configured)
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"loyalty-review webhook secrets"
    ).derive(settings.SECRET_KEY.encode())
    return Fernet(base64.urlsafe_b64encode(derived))
