"""The optional pseudonym vault: surrogate -> original, encrypted, for an authorized steward.

Off by default (`pii.vault`). When on, the scrubber hands every pseudonymized value to
`Vault.add`, and `Vault.save` merges the new entries into one Fernet-encrypted file (AES-128-CBC
with an HMAC-SHA256 tag, from the `cryptography` package); the mapping is never written in clear,
not even to a temporary file. The key comes from the environment variable named by
`pii.vault_key_env` (default `SOVTUNE_VAULT_KEY`), never from the configuration or the data root:
a vault switched on without its key fails closed before anything is scrubbed.

A steward opens one entry with `sovtune vault open --entity TYPE --surrogate VALUE`: the original
is printed to the terminal only, and the lookup is appended to an access log with who, when, the
type, a hash of the surrogate and the number of matches, never a value.
"""

import getpass
import hashlib
import json
import logging
import os
import time
from collections import defaultdict
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

VAULT_FILE = "pii_vault.fernet"
ACCESS_LOG = "vault_access.log"
FORMAT_VERSION = 1

logger = logging.getLogger(__name__)


class VaultError(RuntimeError):
    """The vault cannot be used as configured; nothing is written or revealed."""


def new_key() -> str:
    """A fresh Fernet key (URL-safe base64 of 32 random bytes) to put in the key variable."""
    return Fernet.generate_key().decode("ascii")


class Vault:
    """Surrogate -> original entries, kept in memory until `save` encrypts them to `path`.

    Args:
        path: The encrypted vault file (created on first save).
        key: A Fernet key.
        key_env: Name of the variable the key came from, for error messages.

    Raises:
        VaultError: The key is not a valid Fernet key.
    """

    def __init__(self, path: Path, key: bytes | str, *, key_env: str = "SOVTUNE_VAULT_KEY"):
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError):
            raise VaultError(
                f"${key_env} (pii.vault_key_env) is not a Fernet key: 32 url-safe base64-encoded "
                "bytes; make one with `sovtune vault keygen`"
            ) from None
        self.path = Path(path)
        self.key_env = key_env
        self._new: dict[tuple[str, str], set[str]] = defaultdict(set)

    @classmethod
    def from_env(cls, path: Path, key_env: str) -> "Vault":
        """The vault at `path` with its key from the environment variable `key_env`.

        Raises:
            VaultError: The variable is unset or empty, holds no valid key, or a key that does
                not open the existing vault file.
        """
        key = os.environ.get(key_env, "")
        if not key:
            raise VaultError(
                f"pii.vault is on but ${key_env} (pii.vault_key_env) is not set: set it to the "
                "vault key (make one with `sovtune vault keygen`) or turn pii.vault off"
            )
        vault = cls(path, key, key_env=key_env)
        vault._read()  # fail closed now, before any scrubbing, if the key does not open it
        return vault

    def add(self, entity_type: str, surrogate: str, original: str) -> None:
        """Remember that `surrogate` stands for `original` (kept in memory until `save`)."""
        self._new[(entity_type, surrogate)].add(original)

    def save(self) -> int:
        """Merge the new entries into the encrypted file, atomically; returns the entry count.

        Raises:
            VaultError: The existing file cannot be decrypted with this key (it is left as is).
        """
        entries = self._read()
        for pair, originals in self._new.items():
            entries[pair] |= originals
        rows = [
            [t, s, o] for (t, s), originals in sorted(entries.items()) for o in sorted(originals)
        ]
        token = self._fernet.encrypt(
            json.dumps({"version": FORMAT_VERSION, "entries": rows}, ensure_ascii=False).encode()
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(token)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, self.path)
        self._new.clear()
        return len(rows)

    def lookup(self, entity_type: str, surrogate: str) -> list[str]:
        """The originals behind one surrogate of one type (more than one if two collided).

        Raises:
            VaultError: There is no vault file, or it cannot be decrypted with this key.
        """
        if not self.path.is_file():
            raise VaultError(f"no vault at {self.path}: was pii.vault on when the corpus ran?")
        return sorted(self._read().get((entity_type, surrogate), set()))

    def _read(self) -> dict[tuple[str, str], set[str]]:
        entries: dict[tuple[str, str], set[str]] = defaultdict(set)
        if not self.path.is_file():
            return entries
        try:
            payload = json.loads(self._fernet.decrypt(self.path.read_bytes()))
        except InvalidToken:
            raise VaultError(
                f"{self.path} cannot be decrypted with ${self.key_env} (pii.vault_key_env): "
                "wrong key, or the file was altered"
            ) from None
        for entity_type, surrogate, original in payload["entries"]:
            entries[(entity_type, surrogate)].add(original)
        return entries


def log_access(log_path: Path, entity_type: str, surrogate: str, matches: int) -> None:
    """Append one lookup to the access log: who, when, type, surrogate hash, matches; no value."""
    line = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "user": getpass.getuser(),
        "entity_type": entity_type,
        "surrogate_sha256": hashlib.sha256(surrogate.encode()).hexdigest(),
        "matches": matches,
    }
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")
    logger.info(
        "vault lookup of one %s surrogate by %s: %d match(es)", entity_type, line["user"], matches
    )
