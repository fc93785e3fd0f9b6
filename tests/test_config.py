"""Configuration: defaults, then config.yml, then ASU_* variables, then overrides."""

from pathlib import Path

import pytest

from asu.config import OPENWRT_KEYS, ConfigError, load_config


def test_defaults_are_the_documented_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(environ={})
    assert config.upstream_url == "https://downloads.openwrt.org"
    assert config.upstream_keys == OPENWRT_KEYS
    assert config.public_path == Path("public")
    assert config.cache_path == Path("cache")
    assert config.port == 8000
    assert config.allow_defaults is True
    assert config.max_pending_jobs == 200
    assert (config.build_ttl, config.build_defaults_ttl) == (7 * 86400, 3600)
    assert config.build_failure_ttl == 3600
    assert config.redis_url == ""


def test_yaml_file_then_environment_then_overrides(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yml").write_text(
        "port: 9000\nmax_pending_jobs: 5\nbuild_ttl: 2d\nallow_defaults: false\n"
    )
    environ = {"ASU_MAX_PENDING_JOBS": "7", "ASU_UPSTREAM_KEYS": "a, b,c"}
    config = load_config({"port": 9100}, environ=environ)
    assert config.port == 9100  # override wins
    assert config.max_pending_jobs == 7  # environment beats the file
    assert config.build_ttl == 2 * 86400  # the file beats the default
    assert config.allow_defaults is False
    assert config.upstream_keys == ("a", "b", "c")


def test_asu_config_names_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    other = tmp_path / "elsewhere.yml"
    other.write_text("server_contact: ops@example.org\n")
    config = load_config(environ={"ASU_CONFIG": str(other)})
    assert config.server_contact == "ops@example.org"


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        ({"ASU_PORT": "eighty"}, "port"),
        ({"ASU_ALLOW_DEFAULTS": "maybe"}, "allow_defaults"),
        ({"ASU_BUILD_TTL": "soon"}, "build_ttl"),
    ],
)
def test_bad_values_name_the_key(environ, key, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=key):
        load_config(environ=environ)


def test_unknown_file_key_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yml").write_text("prot: 80\n")
    with pytest.raises(ConfigError, match="prot"):
        load_config(environ={})


def test_store_and_json_live_under_public_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config({"public_path": "/srv/asu"}, environ={})
    assert config.store_path == Path("/srv/asu/store")
    assert config.json_path == Path("/srv/asu/json/v1")
