"""Secrets at rest: Fernet encryption (cryptography) with a key from CRM_SECRET_KEY.

Only the local embedded setup may fall back to a generated key file under ./.data
(mode 600, never in the repo); with DATABASE_URL set, CRM_SECRET_KEY is required.
What is shown back is a hint: the prefix and the last four characters.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from db.config import env_str, is_embedded_database


class SecretKeyError(RuntimeError):
    pass


def _key_file() -> Path:
    return Path(env_str("CRM_DATA_DIR", ".data")) / "secret.key"


def encryption_key() -> bytes:
    key = env_str("CRM_SECRET_KEY")
    if key:
        return key.encode("ascii")
    if not is_embedded_database():
        raise SecretKeyError(
            "CRM_SECRET_KEY is not set: generate one with "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
        )
    path = _key_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(Fernet.generate_key())
    return path.read_bytes().strip()


def encrypt(plaintext: str) -> bytes:
    return Fernet(encryption_key()).encrypt(plaintext.encode("utf-8"))


def decrypt(ciphertext: bytes) -> str:
    try:
        return Fernet(encryption_key()).decrypt(bytes(ciphertext)).decode("utf-8")
    except InvalidToken as exc:
        raise SecretKeyError("a stored secret cannot be decrypted: CRM_SECRET_KEY changed?") from exc


def mask(secret: str) -> str:
    """'sk_test_51Habc...4242' -> 'sk_test_…4242': enough to recognise, not to use."""
    if not secret:
        return ""
    prefix = ""
    for candidate in ("sk_test_", "sk_live_", "rk_test_", "rk_live_", "whsec_", "re_"):
        if secret.startswith(candidate):
            prefix = candidate
            break
    tail = secret[-4:] if len(secret) >= 12 else ""
    return f"{prefix}…{tail}"
