"""The encrypted pseudonym vault: never in clear, fails closed, opened by a steward's command."""

import json
import logging
import re
import sqlite3

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.steps.privacy.surrogates import REGISTRY_FILE
from pipelines.steps.privacy.vault import ACCESS_LOG, VAULT_FILE, Vault, VaultError, new_key
from resources.pii_engine import PIIEngine

ORIGINALS = {
    ("PERSON", "William Harris"): "Jane Doe",
    ("EMAIL_ADDRESS", "cherylhudson@example.net"): "jane.doe@acme.io",
    ("PERSON", "袁桂珍"): "王小明",
}


def _filled(path, key) -> Vault:
    vault = Vault(path, key)
    for (entity_type, surrogate), original in ORIGINALS.items():
        vault.add(entity_type, surrogate, original)
    vault.save()
    return vault


def test_when_saved_then_lookup_finds_originals_and_the_file_holds_no_value(tmp_path) -> None:
    key = new_key()
    _filled(tmp_path / VAULT_FILE, key)
    blob = (tmp_path / VAULT_FILE).read_bytes()

    reopened = Vault(tmp_path / VAULT_FILE, key)
    assert reopened.lookup("PERSON", "William Harris") == ["Jane Doe"]
    assert reopened.lookup("PERSON", "袁桂珍") == ["王小明"]
    assert reopened.lookup("EMAIL_ADDRESS", "William Harris") == []  # type is part of the entry
    for (_, surrogate), original in ORIGINALS.items():
        for text in (original, surrogate):
            assert text.encode() not in blob
            assert text.encode("utf-16-le") not in blob
    assert (tmp_path / VAULT_FILE).stat().st_mode & 0o777 == 0o600
    assert not list(tmp_path.glob("*.partial"))


def test_when_saved_twice_then_entries_merge(tmp_path) -> None:
    key = new_key()
    _filled(tmp_path / VAULT_FILE, key)
    later = Vault(tmp_path / VAULT_FILE, key)
    later.add("PERSON", "William Harris", "J. Doe")  # two originals behind one surrogate

    assert later.save() == 4
    assert Vault(tmp_path / VAULT_FILE, key).lookup("PERSON", "William Harris") == [
        "J. Doe",
        "Jane Doe",
    ]


def test_when_key_variable_is_missing_then_vault_fails_closed(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("SOVTUNE_VAULT_KEY", raising=False)

    with pytest.raises(VaultError, match=r"\$SOVTUNE_VAULT_KEY \(pii.vault_key_env\) is not set"):
        Vault.from_env(tmp_path / VAULT_FILE, "SOVTUNE_VAULT_KEY")


def test_when_key_is_malformed_then_vault_refuses(tmp_path) -> None:
    with pytest.raises(VaultError, match="not a Fernet key"):
        Vault(tmp_path / VAULT_FILE, "not-a-key")


def test_when_key_is_wrong_then_nothing_is_revealed_or_overwritten(tmp_path, monkeypatch) -> None:
    _filled(tmp_path / VAULT_FILE, new_key())
    before = (tmp_path / VAULT_FILE).read_bytes()
    monkeypatch.setenv("SOVTUNE_VAULT_KEY", new_key())

    with pytest.raises(VaultError, match="cannot be decrypted"):
        Vault.from_env(tmp_path / VAULT_FILE, "SOVTUNE_VAULT_KEY")
    assert (tmp_path / VAULT_FILE).read_bytes() == before


def test_when_vault_is_on_without_key_then_scrub_stops_before_scanning(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.delenv("SOVTUNE_VAULT_KEY", raising=False)
    engine = PIIEngine(vault=True, vault_file=str(tmp_path / VAULT_FILE))

    with pytest.raises(VaultError, match="SOVTUNE_VAULT_KEY"):
        engine.scrub([])
    assert engine._analyzer is None  # no analyzer was even built
    assert engine.config.vault and engine.config.vault_key_env == "SOVTUNE_VAULT_KEY"


def test_when_vault_file_is_not_set_then_it_sits_next_to_the_pseudonym_key(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("SOVTUNE_VAULT_KEY", new_key())
    engine = PIIEngine(vault=True, key_file=str(tmp_path / "secrets" / "pseudonym.key"))

    assert engine.open_vault().path == tmp_path / "secrets" / VAULT_FILE


def test_when_a_steward_opens_a_surrogate_then_only_the_terminal_sees_the_original(
    tmp_path, monkeypatch, caplog
) -> None:
    key = new_key()
    _filled(tmp_path / "secrets" / VAULT_FILE, key)
    monkeypatch.setenv("SOVTUNE_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("SOVTUNE_VAULT_KEY", key)
    runner = CliRunner()

    with caplog.at_level(logging.DEBUG):
        found = runner.invoke(
            app, ["vault", "open", "--entity", "PERSON", "--surrogate", "William Harris"]
        )
        missing = runner.invoke(app, ["vault", "open", "--entity", "PERSON", "--surrogate", "X"])

    assert found.exit_code == 0 and found.output.strip() == "Jane Doe"
    assert missing.exit_code == 2 and "Jane Doe" not in missing.output
    log = (tmp_path / "secrets" / ACCESS_LOG).read_text()
    lines = [json.loads(line) for line in log.splitlines()]
    assert [(line["entity_type"], line["matches"]) for line in lines] == [
        ("PERSON", 1),
        ("PERSON", 0),
    ]
    for text in ("Jane Doe", "William Harris"):
        assert text not in log
        assert text not in caplog.text


def test_when_key_is_generated_then_it_opens_a_vault(tmp_path) -> None:
    result = CliRunner().invoke(app, ["vault", "keygen"])

    assert result.exit_code == 0
    assert _filled(tmp_path / VAULT_FILE, result.output.strip()).lookup("PERSON", "袁桂珍")


# --- issue #16 point 7: locked saves, OS identity, modes, weak keys, key ids ------------------


def test_when_two_savers_overlap_then_no_entry_is_lost(tmp_path, monkeypatch) -> None:
    import threading

    from pipelines.steps.privacy import vault as vault_module

    key = new_key()
    first, second = Vault(tmp_path / VAULT_FILE, key), Vault(tmp_path / VAULT_FILE, key)
    first.add("PERSON", "William Harris", "Jane Doe")
    second.add("PERSON", "Carl Moss", "John Roe")
    other = threading.Thread(target=second.save)
    write = vault_module.write_private

    def overlapping_write(path, data):
        # planted: the second drop saves after the first has read the file, before it replaces
        # it; without a lock the second's entry is then overwritten. With the lock the second
        # waits (the join gives up after a second) and merges after the first has written.
        if path == first.path and not other.is_alive() and other.ident is None:
            other.start()
            other.join(timeout=1.0)
        write(path, data)

    monkeypatch.setattr(vault_module, "write_private", overlapping_write)
    first.save()
    other.join()
    reopened = Vault(tmp_path / VAULT_FILE, key)
    assert reopened.lookup("PERSON", "William Harris") == ["Jane Doe"]
    assert reopened.lookup("PERSON", "Carl Moss") == ["John Roe"]


def test_when_a_steward_looks_up_then_the_os_user_and_failed_attempts_are_logged_privately(
    tmp_path, monkeypatch
) -> None:
    import os
    import pwd

    key = new_key()
    _filled(tmp_path / "secrets" / VAULT_FILE, key)
    (tmp_path / "secrets").chmod(0o755)  # planted: a world-readable secrets folder
    monkeypatch.setenv("SOVTUNE_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("USER", "mallory")  # planted: a spoofed user name
    monkeypatch.setenv("LOGNAME", "mallory")
    runner = CliRunner()
    monkeypatch.setenv("SOVTUNE_VAULT_KEY", new_key())  # planted: a wrong key
    wrong = runner.invoke(app, ["vault", "open", "--entity", "PERSON", "--surrogate", "X"])
    monkeypatch.setenv("SOVTUNE_VAULT_KEY", key)
    found = runner.invoke(
        app, ["vault", "open", "--entity", "PERSON", "--surrogate", "William Harris"]
    )

    assert wrong.exit_code == 2 and found.exit_code == 0
    log_path = tmp_path / "secrets" / ACCESS_LOG
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [line["outcome"] for line in lines] == ["wrong_key", "found"]
    assert all(pwd.getpwuid(os.geteuid()).pw_name in line["user"] for line in lines)
    assert all("mallory" not in line["user"] for line in lines)
    assert log_path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "secrets").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    "weak",
    [
        "aaaaaaaaaaaaaaaaaaaaaaaa",  # one byte repeated
        "abcdefghijklmnopqrstuvwx",  # a sequence
        "0123456789abcdef0123456789abcdef",  # a 16-byte block twice
        "abababcdcdcdababcdcdabab",  # four distinct bytes
        "short",
    ],
)
def test_when_the_pseudonym_key_is_weak_then_it_is_refused(tmp_path, monkeypatch, weak) -> None:
    monkeypatch.setenv("SOVTUNE_PSEUDONYM_KEY", weak)  # planted: a weak key
    engine = PIIEngine(key_file=str(tmp_path / "secrets" / "pseudonym.key"))

    with pytest.raises(VaultError, match="SOVTUNE_PSEUDONYM_KEY.*weak key"):
        engine.pseudonym_key()


def test_when_the_vault_key_is_weak_then_it_is_refused(tmp_path) -> None:
    import base64

    with pytest.raises(VaultError, match="weak key"):
        Vault(tmp_path / VAULT_FILE, base64.urlsafe_b64encode(bytes(32)))  # planted: zeros


def test_when_the_key_file_is_readable_by_others_then_it_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("SOVTUNE_PSEUDONYM_KEY", raising=False)
    key_file = tmp_path / "secrets" / "pseudonym.key"
    engine = PIIEngine(key_file=str(key_file))
    engine.pseudonym_key()
    key_file.chmod(0o644)  # planted: a world-readable key file

    with pytest.raises(VaultError, match="chmod 600"):
        engine.pseudonym_key()


def test_when_the_pseudonym_key_changes_then_the_run_is_refused_with_the_rotation_procedure(
    tmp_path, monkeypatch
) -> None:
    from pipelines.steps.privacy.vault import key_id

    engine = PIIEngine(key_file=str(tmp_path / "secrets" / "pseudonym.key"))
    monkeypatch.setenv("SOVTUNE_PSEUDONYM_KEY", "first-key-Zq8vX2pL9mW4rT7y")
    first = engine.pseudonym_key_id()
    assert first == key_id(b"first-key-Zq8vX2pL9mW4rT7y") and "Zq8v" not in first
    monkeypatch.setenv("SOVTUNE_PSEUDONYM_KEY", "second-key-Hn3bQ6sD1fJ5kC0u")  # planted

    with pytest.raises(VaultError, match="docs/security.md"):
        engine.pseudonym_key()
    recorded = json.loads((tmp_path / "secrets" / "key_ids.json").read_text())
    assert recorded["pseudonym"]["key_id"] == first


def test_when_the_vault_is_rotated_then_only_the_new_key_opens_it(tmp_path) -> None:
    old, new = new_key(), new_key()
    _filled(tmp_path / VAULT_FILE, old).rotate(new)

    assert Vault(tmp_path / VAULT_FILE, new).lookup("PERSON", "袁桂珍") == ["王小明"]
    with pytest.raises(VaultError, match="cannot be decrypted"):
        Vault(tmp_path / VAULT_FILE, old).lookup("PERSON", "袁桂珍")


def _thousand_names() -> tuple[list[str], list[str]]:
    import random

    from faker.providers.person import de_DE, en_US, zh_CN

    latin = sorted({*en_US.Provider.first_names, *de_DE.Provider.first_names})
    rng = random.Random(0)
    english = rng.sample(latin, 1000)
    surnames, given = list(zh_CN.Provider.last_names), list(zh_CN.Provider.first_names)
    chinese: set[str] = set()
    while len(chinese) < 1000:
        chinese.add(rng.choice(surnames) + rng.choice(given) + rng.choice(["", *given]))
    return english, sorted(chinese)


def test_when_1000_distinct_names_are_scrubbed_then_1000_distinct_surrogates_and_stable(
    tmp_path,
) -> None:
    from pipelines.steps.privacy.pii import pseudonym
    from pipelines.steps.privacy.surrogates import registry_session

    key = b"collision-test-key-Zq8vX2pL9mW4rT7y"
    registry = tmp_path / "secrets" / REGISTRY_FILE
    english, chinese = _thousand_names()
    with registry_session(registry, key):
        first = {n: pseudonym("PERSON", n, key=key) for n in english + chinese}
    # planted: first names alone drew 532 -> 264 surrogates before (vault lookups met two people)
    assert len({first[n] for n in english}) == 1000
    assert len({first[n] for n in chinese}) == 1000
    assert all(first[n] != n for n in first)
    with registry_session(registry, key):  # a later run: the same surrogates
        assert all(pseudonym("PERSON", n, key=key) == first[n] for n in english[::50])
    digests = _claims(registry)  # surrogates and keyed digests, no value
    assert len(digests) == 2000 and all(re.fullmatch(r"[0-9a-f]{32}", d) for d in digests)
    assert registry.stat().st_mode & 0o777 == 0o600
    assert not any(n.encode() in registry.read_bytes() for n in english[::10] + chinese[::10])


def _claims(registry) -> list[str]:
    with sqlite3.connect(registry) as db:
        return [owner for (owner,) in db.execute("SELECT owner FROM claims")]


def _names_twice(names: list[str], key: bytes) -> dict[str, str]:
    from pipelines.steps.privacy.pii import pseudonym

    # every name, then every name again: the second time reads each one back
    return {n: pseudonym("PERSON", n, key=key) for n in names + names}


def test_when_the_registry_remembers_few_surrogates_then_each_value_still_keeps_its_own(
    tmp_path, monkeypatch
) -> None:
    # The registry keeps only its most recent surrogates in memory; an older value is found
    # again among the claims in the file. Common first names collide often: a value whose
    # first candidates others took must find its own later claim, not take a new one.
    from pipelines.steps.privacy import surrogates

    key = b"collision-test-key-Zq8vX2pL9mW4rT7y"
    english, _ = _thousand_names()
    with surrogates.registry_session(tmp_path / "a" / REGISTRY_FILE, key):
        expected = _names_twice(english[:400], key)
    monkeypatch.setattr(surrogates, "GIVEN_CACHE", 4)
    with surrogates.registry_session(tmp_path / "b" / REGISTRY_FILE, key) as registry:
        assert _names_twice(english[:400], key) == expected
        assert len(registry._given) == 4
    assert len(set(expected.values())) == 400


def test_when_a_scrub_fails_then_its_claims_are_not_kept(tmp_path) -> None:
    from pipelines.steps.privacy.pii import pseudonym
    from pipelines.steps.privacy.surrogates import registry_session

    key = b"collision-test-key-Zq8vX2pL9mW4rT7y"
    registry = tmp_path / "secrets" / REGISTRY_FILE
    with registry_session(registry, key):
        pseudonym("PERSON", "Ada Lovelace", key=key)
    with pytest.raises(RuntimeError), registry_session(registry, key):
        pseudonym("PERSON", "Grace Hopper", key=key)
        raise RuntimeError("the scrub stopped")
    assert len(_claims(registry)) == 1
    with registry_session(registry, b"another-key-0123456789abcdefghij"):
        pass  # a rotated key starts the registry afresh
    assert _claims(registry) == []


def test_when_a_registry_was_kept_as_json_then_it_is_moved_and_its_surrogates_stay(
    tmp_path,
) -> None:
    from pipelines.steps.privacy.pii import pseudonym
    from pipelines.steps.privacy.surrogates import LEGACY_REGISTRY_FILE, registry_session
    from pipelines.steps.privacy.vault import key_id

    key = b"collision-test-key-Zq8vX2pL9mW4rT7y"
    english, _ = _thousand_names()
    with registry_session(tmp_path / "new" / REGISTRY_FILE, key) as fresh:
        first = {n: pseudonym("PERSON", n, key=key) for n in english[:300]}
        claims = fresh.claims("PERSON")
    # the same claims as an older version wrote them
    legacy = tmp_path / "secrets" / LEGACY_REGISTRY_FILE
    legacy.parent.mkdir()
    legacy.write_text(json.dumps({"key_id": key_id(key), "claims": {"PERSON": claims}}))
    registry = tmp_path / "secrets" / REGISTRY_FILE
    with registry_session(registry, key) as moved:
        assert moved.claims("PERSON") == claims
        assert all(pseudonym("PERSON", n, key=key) == first[n] for n in reversed(english[:300]))
    assert not legacy.exists() and len(_claims(registry)) == 300
    # an older version wrote a JSON registry again under the same key: its claims join
    legacy.write_text(json.dumps({"key_id": key_id(key), "claims": {"EMAIL_ADDRESS": {"a": "b"}}}))
    with registry_session(registry, key) as merged:
        assert merged.claims("EMAIL_ADDRESS") == {"a": "b"}
        assert merged.claims("PERSON") == claims
    assert not legacy.exists()


@pytest.mark.parametrize("name", ["surrogates.sqlite", "surrogates.json"])
def test_when_the_registry_file_is_corrupt_then_the_scrub_stops_naming_it(tmp_path, name) -> None:
    from pipelines.steps.privacy.surrogates import RegistryError, registry_session

    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / name).write_bytes(b"\x00not a registry\xff" * 64)
    with (
        pytest.raises(RegistryError, match=r"surrogates\.sqlite.*cannot be read") as raised,
        registry_session(secrets / REGISTRY_FILE, b"collision-test-key-Zq8vX2pL9mW4rT7y"),
    ):
        pass
    assert "not a registry" not in str(raised.value)
