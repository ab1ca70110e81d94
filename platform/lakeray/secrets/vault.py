"""Encryption of secret values at rest: Fernet (AES-128-CBC with an HMAC) under one key.

The key is a file in the platform's home (``secrets.key``, mode 0600), created on first use.
Every process that reads secrets (the registry actor, the serving deployer) opens the same home;
on a multi-node cluster the home is shared storage, like the artifact root. A database dump
alone reveals no secret.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from lakeray.errors import LakerayError

KEY_FILE = "secrets.key"


class Vault:
    """Encrypts and decrypts secret values with the platform's key."""

    def __init__(self, home: Path | str):
        self.path = Path(home) / KEY_FILE
        self._fernet: Fernet | None = None

    def _key(self) -> Fernet:
        if self._fernet is None:
            if not self.path.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(Fernet.generate_key())
                try:
                    # link, not rename: a key another process made first is never replaced
                    os.link(tmp, self.path)
                except FileExistsError:
                    pass
                finally:
                    tmp.unlink()
            self._fernet = Fernet(self.path.read_bytes().strip())
        return self._fernet

    def seal(self, value: bytes) -> bytes:
        """The encrypted form of ``value``."""
        return self._key().encrypt(value)

    def open(self, token: bytes) -> bytes:
        """The value an encrypted token holds (LakerayError if the key does not match)."""
        try:
            return self._key().decrypt(bytes(token))
        except InvalidToken:
            raise LakerayError(f"a secret cannot be decrypted with {self.path}: was the key replaced?") from None
