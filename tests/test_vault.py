"""The encrypted pseudonym vault: never in clear, fails closed, opened by a steward's command."""

import json
import logging

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
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
