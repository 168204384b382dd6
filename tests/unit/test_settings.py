from __future__ import annotations

from pathlib import Path

import pytest

from incident.errors import ConfigError
from incident.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_default_toml_documents_exactly_the_built_in_defaults() -> None:
    assert load_settings(ROOT / "config" / "default.toml", {}) == Settings()


def test_environment_overrides_with_type_conversion(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[http]\nport = 9000\n[log]\nlevel = "DEBUG"\n')
    s = load_settings(
        path,
        {
            "INCIDENT_HTTP__PORT": "8081",
            "INCIDENT_TWILIO__MESSAGES_PER_SECOND": "2.5",
            "INCIDENT_TEST_POSTGRES_URL": "ignored: not a settings variable",
        },
    )
    assert s.http.port == 8081
    assert s.twilio.messages_per_second == 2.5
    assert s.log.level == "DEBUG"  # from the file, untouched


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ("[http]\nprot = 1\n", {}, "s.toml: [http] unknown key 'prot'"),
        ("[htp]\nport = 1\n", {}, "unknown field `htp`"),
        ('[http]\nport = "eighty"\n', {}, "s.toml: [http] port: Expected `int`, got `str`"),
        ("[http]\nport = 70000\n", {}, "s.toml: [http] port: Expected `int` <= 65535"),
        ('[carrier]\nmode = "pigeon"\n', {}, "s.toml: [carrier] mode: Invalid enum value 'pigeon'"),
        (
            '[store]\nurl = "mysql://x"\n',
            {},
            "s.toml: [store] url must start with sqlite:///PATH or postgresql://",
        ),
        ("", {"INCIDENT_HTTP__PORT": "x"}, "environment INCIDENT_HTTP__PORT: Expected `int`"),
        (
            "",
            {"INCIDENT_HTTP__PORTS": "1"},
            "environment INCIDENT_HTTP__PORTS: unknown key 'ports' in [http]",
        ),
        ("", {"INCIDENT_NOPE__X": "1"}, "environment INCIDENT_NOPE__X: unknown section [nope]"),
        ("", {"INCIDENT_STORE__URL": "redis://"}, "environment INCIDENT_STORE__URL: [store] url must start"),
        ("[http\n", {}, "s.toml: not valid TOML"),
    ],
)
def test_bad_settings_stop_start_up_naming_key_and_source(
    tmp_path: Path, toml: str, env: dict[str, str], message: str
) -> None:
    path = tmp_path / "s.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_settings(path, env)
    assert message in str(err.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_settings(tmp_path / "absent.toml", {})


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(AttributeError):
        s.http.port = 1  # type: ignore[misc]
