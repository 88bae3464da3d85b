"""Secrets at rest: Fernet encryption (cryptography) with a key from CRM_SECRET_KEY.

Only the local embedded setup may fall back to a generated key file under ./.data
(mode 600, never in the repo); with DATABASE_URL set, CRM_SECRET_KEY is required.
What is shown back is a hint: the prefix and the last four characters.

Key rotation (MultiFernet): new secrets are encrypted with CRM_SECRET_KEY; secrets are
decrypted with it or any of CRM_SECRET_KEYS_OLD (comma-separated, decrypt-only).
`rotate_all` (`python -m crm rotate-secret-key`) re-encrypts every stored secret with
the current key, after which the old keys can be dropped. A secret no key decrypts
raises UndecryptableSecret, whose message names the cause, never a key or a value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from db import settings_store
from db.config import env_str, is_embedded_database

UNDECRYPTABLE = "stored secrets cannot be decrypted with CRM_SECRET_KEY"
WHAT_TO_DO = ("set CRM_SECRET_KEY to the key they were saved with; or keep the new key, put the old one in "
              "CRM_SECRET_KEYS_OLD and run `python -m crm rotate-secret-key`; or re-enter them in "
              "Settings -> Integrations")


class SecretKeyError(RuntimeError):
    pass


class UndecryptableSecret(SecretKeyError):
    """A stored secret that none of the configured keys decrypts."""


def _key_file() -> Path:
    return Path(env_str("CRM_DATA_DIR", ".data")) / "secret.key"


def encryption_key() -> bytes:
    key = env_str("CRM_SECRET_KEY")
    if key:
        return key.encode("ascii", "replace")  # a non-ASCII key fails as "not a Fernet key"
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


def _fernet(key: bytes, name: str) -> Fernet:
    try:
        return Fernet(key)
    except (ValueError, TypeError):
        raise SecretKeyError(f"{name} is not a Fernet key (32 url-safe base64-encoded bytes)") from None


def old_keys() -> list[bytes]:
    raw = env_str("CRM_SECRET_KEYS_OLD") or ""
    return [k.strip().encode("ascii", "replace") for k in raw.split(",") if k.strip()]


def _multi() -> MultiFernet:
    """The current key first (it encrypts), then the old ones (they only decrypt)."""
    keys = [_fernet(encryption_key(), "CRM_SECRET_KEY")]
    keys += [_fernet(k, "a key in CRM_SECRET_KEYS_OLD") for k in old_keys()]
    return MultiFernet(keys)


def encrypt(plaintext: str) -> bytes:
    return _fernet(encryption_key(), "CRM_SECRET_KEY").encrypt(plaintext.encode("utf-8"))


def decrypt(ciphertext: bytes) -> str:
    try:
        return _multi().decrypt(bytes(ciphertext)).decode("utf-8")
    except InvalidToken:
        raise UndecryptableSecret(f"{UNDECRYPTABLE} (or CRM_SECRET_KEYS_OLD): {WHAT_TO_DO}") from None


@dataclass(frozen=True)
class RotationReport:
    rotated: list[str]
    undecryptable: list[str]


def rotate_all(conn: Any) -> RotationReport:
    """Re-encrypt every stored secret with CRM_SECRET_KEY, in one transaction.

    Secrets no configured key decrypts are left as they are and named in the report (so
    the owner can re-enter them); everything else is rewritten. Values are never returned.
    """
    multi = _multi()
    rotated: list[str] = []
    undecryptable: list[str] = []
    with conn.transaction():
        for name, ciphertext in settings_store.lock_ciphertexts(conn):
            try:
                fresh = multi.rotate(ciphertext)
            except InvalidToken:
                undecryptable.append(name)
                continue
            settings_store.replace_ciphertext(conn, name, fresh)
            rotated.append(name)
    return RotationReport(rotated, undecryptable)


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
