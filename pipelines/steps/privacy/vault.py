"""The optional pseudonym vault: surrogate -> original, encrypted, for an authorized steward.

Off by default (`pii.vault`). When on, the scrubber hands every pseudonymized value to
`Vault.add`, and `Vault.save` merges the new entries into one Fernet-encrypted file (AES-128-CBC
with an HMAC-SHA256 tag, from the `cryptography` package); the mapping is never written in clear,
not even to a temporary file. The key comes from the environment variable named by
`pii.vault_key_env` (default `SOVTUNE_VAULT_KEY`), never from the configuration or the data root:
a vault switched on without its key fails closed before anything is scrubbed.

A steward opens one entry with `sovtune vault open --entity TYPE --surrogate VALUE`: the original
is printed to the terminal only, and every attempt, failed ones included, is appended to an
access log with the operating-system user (effective uid, not the spoofable $USER), when, the
type, a hash of the surrogate, the outcome and the number of matches, never a value.

Hardening (issue #16): saves hold an exclusive `fcntl` lock on `<vault>.lock` across read,
merge and replace, so two drops saving at once lose nothing; `secrets/` is 0700 and every file in
it 0600; weak keys (short, few distinct bytes, a repeated or sequential pattern, low entropy) are
refused; a key file readable by group or others is refused; and each key's id (a hash prefix,
`key_id`) is recorded in `secrets/key_ids.json` on first use, so a run with a rotated or
mismatched key stops with the rotation procedure (docs/security.md) instead of silently mixing
pseudonyms of two keys.
"""

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import pwd
import stat
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

VAULT_FILE = "pii_vault.fernet"
ACCESS_LOG = "vault_access.log"
KEY_IDS = "key_ids.json"
FORMAT_VERSION = 1
SECRETS_DIR_MODE = 0o700
SECRET_FILE_MODE = 0o600
MIN_KEY_BYTES = 16
MIN_DISTINCT_BYTES = 8
MIN_KEY_ENTROPY_BITS = 40.0
ROTATION_DOC = "docs/security.md (Rotating keys)"

logger = logging.getLogger(__name__)


class VaultError(RuntimeError):
    """The vault cannot be used as configured; nothing is written or revealed."""


class KeyRefused(VaultError):
    """A key that must not be used: weak, badly protected, or not the key this data root uses."""


def weak_key_reason(key: bytes) -> str | None:
    """Why `key` is too weak to be a secret (None when it is acceptable).

    Refused: fewer than `MIN_KEY_BYTES` bytes; fewer than `MIN_DISTINCT_BYTES` distinct bytes;
    one short pattern repeated (`abcabc...`, a 16-byte block twice); a sequence with a constant
    step (`abcdefgh...`, `0123...`); or under `MIN_KEY_ENTROPY_BITS` bits of empirical entropy
    (length x Shannon entropy of its byte frequencies). 32 random bytes pass with a wide margin.
    """
    if len(key) < MIN_KEY_BYTES:
        return f"shorter than {MIN_KEY_BYTES} bytes"
    if len(set(key)) < MIN_DISTINCT_BYTES:
        return f"fewer than {MIN_DISTINCT_BYTES} distinct bytes"
    for unit in range(1, len(key) // 2 + 1):
        if len(key) % unit == 0 and key == key[:unit] * (len(key) // unit):
            return f"a {unit}-byte pattern repeated"
    steps = Counter((b - a) % 256 for a, b in zip(key, key[1:], strict=False))
    if steps.most_common(1)[0][1] >= 0.75 * (len(key) - 1):
        return "a sequence with a constant step"
    counts = Counter(key).values()
    entropy = -sum(n / len(key) * math.log2(n / len(key)) for n in counts) * len(key)
    if entropy < MIN_KEY_ENTROPY_BITS:
        return f"about {entropy:.0f} bits of entropy (< {MIN_KEY_ENTROPY_BITS:.0f})"
    return None


def key_id(key: bytes) -> str:
    """A short public id of a key (a hash prefix): recorded per run, never the key itself."""
    return "k-" + hashlib.sha256(b"sovtune key id\x00" + key).hexdigest()[:12]


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) and make it 0700: secrets are the owner's alone."""
    path.mkdir(mode=SECRETS_DIR_MODE, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != SECRETS_DIR_MODE:
        path.chmod(SECRETS_DIR_MODE)
    return path


def read_key_file(path: Path) -> bytes:
    """The key in `path`, refused when it is a link or readable by group or others.

    Raises:
        KeyRefused: naming the file and the `chmod` to run.
    """
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        raise KeyRefused(f"key file {path} is not a regular file (a link is never followed)")
    if info.st_mode & 0o077:
        raise KeyRefused(
            f"key file {path} has mode {stat.S_IMODE(info.st_mode):04o}: readable beyond its "
            f"owner; run `chmod 600 {path}` (and consider the key exposed: rotate it, "
            f"{ROTATION_DOC})"
        )
    return path.read_bytes()


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive `fcntl.flock` on `path` (created 0600) for the block."""
    private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, SECRET_FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def check_key_id(secrets_dir: Path, name: str, key: bytes, *, setting: str) -> str:
    """Record the id of key `name` on first use; refuse a different key afterwards.

    Args:
        secrets_dir: The data root's `secrets/` folder (holds `key_ids.json`).
        name: Which key (`pseudonym`, `vault`).
        key: The key in use.
        setting: Where the key comes from, for the message (an env variable or file).

    Returns:
        The key's id, to record with the run.

    Raises:
        KeyRefused: The data root was used with another key (rotated or mismatched).
    """
    current = key_id(key)
    path = secrets_dir / KEY_IDS
    with exclusive_lock(secrets_dir / (KEY_IDS + ".lock")):
        known = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        recorded = known.get(name, {}).get("key_id")
        if recorded and recorded != current:
            raise KeyRefused(
                f"the {name} key from {setting} has id {current} but this data root was "
                f"processed with key {recorded} ({path}): a rotated or wrong key would mix "
                f"pseudonyms of two keys; restore the key, or follow {ROTATION_DOC}"
            )
        if not recorded:
            known[name] = {
                "key_id": current,
                "first_used": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            write_private(path, json.dumps(known, indent=2, sort_keys=True).encode())
    return current


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically with mode 0600 (never readable by others)."""
    private_dir(path.parent)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SECRET_FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


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
        raw = base64.urlsafe_b64decode(key if isinstance(key, bytes) else key.encode("ascii"))
        weak = weak_key_reason(raw)
        if weak:
            raise KeyRefused(
                f"${key_env} (pii.vault_key_env) is a weak key ({weak}); make one with "
                "`sovtune vault keygen`"
            )
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
        # Read, merge and replace under one lock: a second saver waits, then merges our entries.
        with exclusive_lock(self.lock_path):
            entries = self._read()
            for pair, originals in self._new.items():
                entries[pair] |= originals
            written = self._write(entries)
        self._new.clear()
        return written

    def remove(self, pairs: set[tuple[str, str]]) -> int:
        """Delete the entries of these (type, surrogate) pairs (an erasure); returns how many
        originals were removed. The file is rewritten under the save lock, as `save` does.

        Raises:
            VaultError: The existing file cannot be decrypted with this key (left as is).
        """
        with exclusive_lock(self.lock_path):
            entries = self._read()
            removed = sum(len(entries.pop(pair, ())) for pair in pairs)
            if removed:
                self._write(entries)
        return removed

    def _write(self, entries) -> int:
        """Encrypt and atomically replace the file with `entries` (caller holds the lock);
        returns how many (type, surrogate, original) rows were written."""
        rows = [
            [t, s, o] for (t, s), originals in sorted(entries.items()) for o in sorted(originals)
        ]
        payload = {"version": FORMAT_VERSION, "entries": rows}
        token = self._fernet.encrypt(json.dumps(payload, ensure_ascii=False).encode())
        write_private(self.path, token)
        return len(rows)

    @property
    def lock_path(self) -> Path:
        """The lock file every save of this vault holds."""
        return self.path.with_name(self.path.name + ".lock")

    def rotate(self, new_key: bytes | str) -> int:
        """Re-encrypt the vault under `new_key` (this vault's key must open it); returns rows.

        Raises:
            VaultError: The file cannot be decrypted with the current key, or the new key is
                weak or malformed.
        """
        replacement = Vault(self.path, new_key, key_env="the new key")
        with exclusive_lock(self.lock_path):
            self._read()  # fail closed before anything is rewritten
            token = MultiFernet([replacement._fernet, self._fernet]).rotate(self.path.read_bytes())
            write_private(self.path, token)
        return sum(len(o) for o in replacement._read().values())

    def lookup(self, entity_type: str, surrogate: str) -> list[str]:
        """The originals behind one surrogate of one type (more than one if two collided).

        Raises:
            VaultError: There is no vault file, or it cannot be decrypted with this key.
        """
        if not self.path.is_file():
            error = VaultError(f"no vault at {self.path}: was pii.vault on when the corpus ran?")
            error.outcome = "no_vault"  # type: ignore[attr-defined]
            raise error
        return sorted(self._read().get((entity_type, surrogate), set()))

    def _read(self) -> dict[tuple[str, str], set[str]]:
        entries: dict[tuple[str, str], set[str]] = defaultdict(set)
        if not self.path.is_file():
            return entries
        try:
            payload = json.loads(self._fernet.decrypt(self.path.read_bytes()))
        except InvalidToken:
            error = VaultError(
                f"{self.path} cannot be decrypted with ${self.key_env} (pii.vault_key_env): "
                "wrong key, or the file was altered"
            )
            error.outcome = "wrong_key"  # type: ignore[attr-defined]
            raise error from None
        for entity_type, surrogate, original in payload["entries"]:
            entries[(entity_type, surrogate)].add(original)
        return entries


def os_user() -> str:
    """The operating-system account running this process (effective uid; $USER is not read)."""
    uid = os.geteuid()
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def log_access(
    log_path: Path, entity_type: str, surrogate: str, matches: int, *, outcome: str = "found"
) -> None:
    """Append one lookup attempt to the access log (mode 0600 in a 0700 folder).

    Who (the OS account, `os_user`), when, type, surrogate hash, outcome (`found`, `no_match`,
    `no_vault`, `wrong_key`, `refused`) and matches; never a value.
    """
    line = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "user": os_user(),
        "entity_type": entity_type,
        "surrogate_sha256": hashlib.sha256(surrogate.encode("utf-8", "replace")).hexdigest(),
        "outcome": outcome,
        "matches": matches,
    }
    private_dir(log_path.parent)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, SECRET_FILE_MODE)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        if stat.S_IMODE(os.fstat(handle.fileno()).st_mode) != SECRET_FILE_MODE:
            os.fchmod(handle.fileno(), SECRET_FILE_MODE)
        handle.write(json.dumps(line) + "\n")
    logger.info(
        "vault lookup of one %s surrogate by %s: %s, %d match(es)",
        entity_type,
        line["user"],
        outcome,
        matches,
    )
