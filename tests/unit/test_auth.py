from __future__ import annotations

from pathlib import Path

import pytest

from incident.core.auth import TokenRegistry, add_token, read_tokens, token_digest
from incident.core.domain import Role
from incident.core.errors import ConfigError, InvalidInput


def test_tokens_are_stored_hashed_and_authenticate(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    token = add_token(path, "alice", Role.dispatcher)
    text = path.read_text()
    assert token not in text and token_digest(token) in text
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    registry = TokenRegistry(read_tokens(path))
    principal = registry.authenticate(token)
    assert principal is not None and (principal.name, principal.role) == ("alice", Role.dispatcher)
    assert registry.authenticate(token + "x") is None


def test_adding_keeps_others_and_refuses_duplicates_unless_replacing(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    old = add_token(path, "alice", Role.dispatcher)
    bob = add_token(path, "bob", Role.reviewer)
    with pytest.raises(InvalidInput, match="exists already"):
        add_token(path, "alice", Role.admin)
    new = add_token(path, "alice", Role.admin, replace=True)
    registry = TokenRegistry(read_tokens(path))
    assert registry.authenticate(old) is None
    assert registry.authenticate(new) is not None and registry.authenticate(new).role == Role.admin  # type: ignore[union-attr]
    assert registry.authenticate(bob) is not None and len(registry) == 2


def test_bad_tokens_files_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text('[[tokens]]\nname = "x"\nrole = "janitor"\ntoken_sha256 = "' + "0" * 64 + '"\n')
    with pytest.raises(ConfigError, match="janitor"):
        read_tokens(path)
    assert read_tokens(tmp_path / "absent.toml").tokens == []


def test_token_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="token name"):
        add_token(tmp_path / "t.toml", "bad name!", Role.dispatcher)
