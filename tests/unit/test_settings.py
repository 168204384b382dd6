from __future__ import annotations

import os
import tomllib
from pathlib import Path

import msgspec
import pytest

from incident.core.errors import ConfigError
from incident.settings import BUNDLED_DIR, Settings, environment_warnings, load_settings, settings_toml

ROOT = Path(__file__).resolve().parents[2]


def test_default_toml_documents_exactly_the_built_in_defaults() -> None:
    # Read from a file, the runtime paths are beside the file; every other key is the default.
    folder = ROOT / "config"
    defaults = Settings()
    expected = msgspec.structs.replace(
        defaults,
        store=msgspec.structs.replace(defaults.store, url=f"sqlite:///{folder / 'var' / 'incident.db'}"),
        auth=msgspec.structs.replace(defaults.auth, tokens_file=str(folder / "var" / "tokens.toml")),
    )
    assert load_settings(folder / "default.toml", {}) == expected


def test_defaults_name_files_shipped_inside_the_package() -> None:
    s = Settings()
    shipped = [s.area.households, s.area.layers, s.area.network, s.area.valves, s.notify.templates,
               s.playbooks.dir, s.playbooks.oncall]  # fmt: skip
    for value in shipped:
        path = Path(value)
        assert path.is_absolute() and path.exists(), value
        assert path.is_relative_to(BUNDLED_DIR), value
    assert (Path(s.notify.templates) / "en").is_dir()
    assert sorted(Path(s.playbooks.dir).glob("*.yaml"))


def test_relative_paths_in_a_file_are_beside_it_and_from_the_environment_in_the_cwd(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    path = folder / "s.toml"
    path.write_text(
        '[store]\nurl = "sqlite:///data/x.db"\n[auth]\ntokens_file = "tokens.toml"\n'
        '[area]\nhouseholds = "h.csv"\nlayers = "/abs/layers"\nnetwork = ""\n'
        '[notify]\ntemplates = "bundled:templates/notices"\n[playbooks]\ndir = "../books"\n'
    )
    s = load_settings(path, {"INCIDENT_AREA__VALVES": "v.csv"})
    assert s.store.url == f"sqlite:///{folder / 'data' / 'x.db'}"
    assert s.auth.tokens_file == str(folder / "tokens.toml")
    assert s.area.households == str(folder / "h.csv")
    assert s.area.layers == "/abs/layers"  # absolute: as written
    assert s.area.network == ""  # empty: none, not the folder
    assert s.area.valves == "v.csv"  # from the environment: the working directory's
    assert s.notify.templates == str(BUNDLED_DIR / "templates" / "notices")
    assert Path(s.playbooks.dir) == folder / ".." / "books"
    # Relative to the file, not to where the loader is called from: the same from /.
    assert load_settings(Path(os.path.relpath(path, Path.cwd())), {}) == load_settings(path, {})


def test_a_bundled_name_cannot_leave_the_bundled_folder(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[notify]\ntemplates = "bundled:../../../etc"\n')
    with pytest.raises(ConfigError, match="outside the bundled files"):
        load_settings(path, {})


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


def test_a_list_comes_from_the_environment_as_json(tmp_path: Path) -> None:
    s = load_settings(None, {"INCIDENT_PUBLIC__TRUSTED_PROXIES": '["10.0.0.1", "::1"]'})
    assert s.public.trusted_proxies == ["10.0.0.1", "::1"]
    with pytest.raises(ConfigError, match="INCIDENT_PUBLIC__TRUSTED_PROXIES"):
        load_settings(None, {"INCIDENT_PUBLIC__TRUSTED_PROXIES": "[10.0.0.1"})
    with pytest.raises(ConfigError, match="INCIDENT_PUBLIC__TRUSTED_PROXIES"):
        load_settings(None, {"INCIDENT_PUBLIC__TRUSTED_PROXIES": "10.0.0.1"})


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


TWILIO = {
    "INCIDENT_CARRIER__MODE": "twilio",
    "INCIDENT_TWILIO__ACCOUNT_SID": "AC123",
    "INCIDENT_TWILIO__AUTH_TOKEN": "s3cret",
    "INCIDENT_TWILIO__FROM_NUMBER": "+15025550000",
    "INCIDENT_TWILIO__PUBLIC_BASE_URL": "https://incident.example",
}


@pytest.mark.parametrize(
    ("drop", "change", "message"),
    [
        ("INCIDENT_TWILIO__AUTH_TOKEN", {}, '[carrier] mode = "twilio" needs [twilio] auth_token'),
        ("INCIDENT_TWILIO__PUBLIC_BASE_URL", {}, "needs [twilio] public_base_url"),
        (
            None,
            {"INCIDENT_TWILIO__PUBLIC_BASE_URL": "incident.example"},
            "public_base_url must be the http(s) URL",
        ),
        (None, {"INCIDENT_TWILIO__FROM_NUMBER": "5025550000"}, "from_number must be an E.164 number"),
    ],
)
def test_twilio_mode_needs_its_credentials_and_a_public_url(
    drop: str | None, change: dict[str, str], message: str
) -> None:
    env = {k: v for k, v in TWILIO.items() if k != drop} | change
    with pytest.raises(ConfigError) as err:
        load_settings(None, env)
    assert message in err.value.message
    assert "\n" not in err.value.message  # one line
    assert load_settings(None, TWILIO).carrier.mode == "twilio"


def test_twilio_mode_names_every_missing_key() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, {"INCIDENT_CARRIER__MODE": "twilio"})
    assert "account_sid, auth_token, from_number, public_base_url" in err.value.message


def test_environment_variables_that_set_nothing_are_named_with_the_right_spelling() -> None:
    warnings = environment_warnings(
        {
            "INCIDENT_HTTP_PORT": "8081",
            "INCIDENT_KAFKA_BOOTSTRAP_SERVERS": "k:9092",
            "INCIDENT_COLOUR": "blue",
            "INCIDENT_HTTP__PORT": "8081",  # a setting
            "INCIDENT_TOKEN": "x",  # the CLI's own
            "INCIDENT_TEST_POSTGRES_URL": "postgresql://",  # the tests'
            "INCIDENT_SCREENSHOTS": "var/screenshots",  # the browser tests' (.ci/run sets it)
            "HOME": "/root",
        }
    )
    assert warnings == [
        "environment INCIDENT_COLOUR sets nothing and is ignored: settings are "
        "INCIDENT_<SECTION>__<KEY> (two underscores)",
        "environment INCIDENT_HTTP_PORT sets nothing and is ignored: did you mean INCIDENT_HTTP__PORT?",
        "environment INCIDENT_KAFKA_BOOTSTRAP_SERVERS sets nothing and is ignored: did you mean "
        "INCIDENT_KAFKA__BOOTSTRAP_SERVERS?",
    ]


def test_settings_print_as_toml_that_loads_back_to_the_same_settings(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        '[notify]\nutility_name = "Wasser \\"Süd\\" \\\\ Ost\\tline"\n'
        '[correlation]\nauto_declare = []\n[correlation.compatible]\ngas_leak = ["gas_leak"]\n'
        '[area]\ndefault_region = "CN"\n',
        encoding="utf-8",
    )
    settings = load_settings(path, TWILIO)
    text = settings_toml(settings)
    # Everything loads back as it was, but the secret, which is masked, and the paths relative
    # to the working directory, which are written whole (the file may be saved anywhere).
    cwd = Path.cwd()
    masked = msgspec.structs.replace(
        settings,
        twilio=msgspec.structs.replace(settings.twilio, auth_token="********"),
        store=msgspec.structs.replace(settings.store, url=f"sqlite:///{cwd / 'var' / 'incident.db'}"),
        auth=msgspec.structs.replace(settings.auth, tokens_file=str(cwd / "var" / "tokens.toml")),
    )
    assert load_settings(_write(tmp_path / "back.toml", text), {}) == masked
    assert tomllib.loads(text)["notify"]["utility_name"] == 'Wasser "Süd" \\ Ost\tline'
    assert "[[correlation.auto_declare]]" not in text and "auto_declare = []" in text
    assert "[area]\n" in text and 'default_region = "CN"' in text


def test_printed_settings_hide_secrets_but_not_paths() -> None:
    text = settings_toml(
        load_settings(
            None,
            {**TWILIO, "INCIDENT_PUSH__TOKEN": "pushtok", "INCIDENT_STORE__URL": "postgresql://u:pw@db/x"},
        )
    )
    data = tomllib.loads(text)
    assert data["twilio"]["auth_token"] == data["push"]["token"] == "********"
    assert "s3cret" not in text and "pushtok" not in text and ":pw@" not in text
    assert data["store"]["url"] == "postgresql://u:********@db/x"
    assert data["auth"]["tokens_file"] == str(Path.cwd() / "var" / "tokens.toml")  # a path, not a secret


def test_an_unknown_default_region_stops_start_up() -> None:
    with pytest.raises(ConfigError, match=r"\[area\] default_region 'ZZ' is not a region code"):
        load_settings(None, {"INCIDENT_AREA__DEFAULT_REGION": "ZZ"})


def test_a_trusted_proxy_that_is_no_address_stops_start_up() -> None:
    with pytest.raises(ConfigError, match=r"trusted_proxies: 'proxy.local' is not an address or network"):
        load_settings(None, {"INCIDENT_PUBLIC__TRUSTED_PROXIES": '["10.0.0.0/8", "proxy.local"]'})
    settings = load_settings(None, {"INCIDENT_PUBLIC__TRUSTED_PROXIES": '["10.0.0.0/8", "fd00::1"]'})
    assert settings.public.trusted_proxies == ["10.0.0.0/8", "fd00::1"]


def test_an_unknown_enrolment_region_stops_start_up() -> None:
    with pytest.raises(ConfigError, match=r"allowed_regions: 'XX' is not a region code"):
        load_settings(None, {"INCIDENT_ENROLMENT__ALLOWED_REGIONS": '["US", "XX"]'})


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


EMAIL = {
    "INCIDENT_EMAIL__HOST": "smtp.utility.example",
    "INCIDENT_EMAIL__FROM_ADDRESS": "Riverside Water <alerts@riverside.example>",
    "INCIDENT_EMAIL__USER": "alerts",
    "INCIDENT_EMAIL__PASSWORD": "mailpw",
}


@pytest.mark.parametrize(
    ("drop", "change", "message"),
    [
        ("INCIDENT_EMAIL__FROM_ADDRESS", {}, "[email] from_address is needed too"),
        (None, {"INCIDENT_EMAIL__FROM_ADDRESS": "alerts"}, "from_address must be an address"),
        (None, {"INCIDENT_EMAIL__FROM_ADDRESS": "a@b.example\r\nBcc: x@y.example"}, "from_address must be"),
        ("INCIDENT_EMAIL__PASSWORD", {}, "[email] password is empty"),
        (None, {"INCIDENT_EMAIL__TLS": "none"}, "would send the password in clear"),
        (None, {"INCIDENT_EMAIL__TLS": "ssl"}, "INCIDENT_EMAIL__TLS: Invalid enum value"),
        (None, {"INCIDENT_EMAIL__HOST": "smtp://smtp.utility.example"}, "host must be a host name"),
        (None, {"INCIDENT_EMAIL__PORT": "0"}, "INCIDENT_EMAIL__PORT"),
        ("INCIDENT_EMAIL__HOST", {}, "[email] user is set but host is empty"),
    ],
)
def test_email_settings_are_checked_across_keys(
    drop: str | None, change: dict[str, str], message: str
) -> None:
    env = {k: v for k, v in EMAIL.items() if k != drop} | change
    with pytest.raises(ConfigError) as err:
        load_settings(None, env)
    assert message in err.value.message
    assert "mailpw" not in err.value.message


def test_email_is_a_channel_only_with_a_host() -> None:
    assert not load_settings(None, {}).email.configured
    settings = load_settings(None, EMAIL)
    assert settings.email.configured and settings.email.tls == "starttls" and settings.email.port == 587
    relay = load_settings(None, {"INCIDENT_EMAIL__HOST": "127.0.0.1", "INCIDENT_EMAIL__TLS": "none",
                                 "INCIDENT_EMAIL__FROM_ADDRESS": "alerts@riverside.example"})  # fmt: skip
    assert relay.email.configured and relay.email.user == ""
    text = settings_toml(settings)
    assert "mailpw" not in text and tomllib.loads(text)["email"]["password"] == "********"
