"""Configuration: strict parsing, generated secrets on the embedded default, refused placeholders."""

from __future__ import annotations

import json
import os
import stat

import pytest

import config
from config import ConfigError, load_config

STRONG = {
    "SECRET_KEY": "Qm9vdHN0cmFwLXNlY3JldC1mb3ItdGVzdHMtb25seS0x",
    "API_KEY_PEPPER": "UGVwcGVyLWZvci10ZXN0cy1vbmx5LXJhbmRvbS12YWx1ZQ",
}


def test_embedded_default_generates_secrets_once_owner_only(tmp_path):
    first = load_config(str(tmp_path), environ={})
    path = tmp_path / "secrets.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    second = load_config(str(tmp_path), environ={})
    for name in config.SECRET_NAMES:
        assert first[name] == second[name] == json.loads(path.read_text())[name]
    assert first["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/algobridge.db"
    assert first["AUTO_MIGRATE"] is True
    assert first["EMBEDDED_DATABASE"] is True


def test_outside_the_embedded_default_a_missing_secret_stops_start_up(tmp_path):
    env = {"DATABASE_URL": "postgresql://u@db/algobridge", **STRONG}
    with pytest.raises(ConfigError, match="TOKEN_ENCRYPTION_KEYS must be set"):
        load_config(str(tmp_path), environ=env)
    assert not (tmp_path / "secrets.json").exists()


@pytest.mark.parametrize(
    "value", ["changeme-changeme-changeme-changeme", "your-secret-key-here-please-1234567", "short"]
)
def test_placeholder_or_weak_secret_is_refused_by_name(tmp_path, value):
    env = {"DATABASE_URL": "postgresql://u@db/a", **STRONG, "SECRET_KEY": value,
           "TOKEN_ENCRYPTION_KEYS": "Dn7oGM2wTqsv1Nwz4nhR5f6s9y4B0QmQm2Q8kF1yL0A="}
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_config(str(tmp_path), environ=env)


def test_strict_parsing_names_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="AUTO_MIGRATE='maybe' is not a boolean"):
        load_config(str(tmp_path), environ={"AUTO_MIGRATE": "maybe"})
    with pytest.raises(ConfigError, match="DB_POOL_SIZE='five' is not a whole number"):
        load_config(str(tmp_path), environ={"DB_POOL_SIZE": "five"})
    with pytest.raises(ConfigError, match="DB_POOL_SIZE=0 must be at least 1"):
        load_config(str(tmp_path), environ={"DB_POOL_SIZE": "0"})
    assert load_config(str(tmp_path), environ={"AUTO_MIGRATE": "off"})["AUTO_MIGRATE"] is False


def test_postgres_urls_are_rewritten_for_psycopg(tmp_path):
    env = {"DATABASE_URL": "postgres://u@db:5432/a", **STRONG,
           "TOKEN_ENCRYPTION_KEYS": "Dn7oGM2wTqsv1Nwz4nhR5f6s9y4B0QmQm2Q8kF1yL0A="}
    cfg = load_config(str(tmp_path), environ=env)
    assert cfg["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@db:5432/a"
    assert cfg["AUTO_MIGRATE"] is False  # production runs `flask db upgrade`


def test_env_example_lists_every_variable():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, ".env.example"), encoding="utf-8") as fh:
        text = fh.read()
    assert text == config.env_example(), "regenerate with: python -c 'import config; print(config.env_example())'"
    for setting in config.SETTINGS:
        assert f"# {setting.name}=" in text


def test_a_random_secret_that_happens_to_contain_a_word_is_accepted(tmp_path):
    env = {"DATABASE_URL": "postgresql://u@db/a", **STRONG,
           "SECRET_KEY": "q8ZchangeXxxxexample_Lm3Pk9Rt2Vw7Yb4Nc6Hd1Jf5",
           "TOKEN_ENCRYPTION_KEYS": "Dn7oGM2wTqsv1Nwz4nhR5f6s9y4B0QmQm2Q8kF1yL0A="}
    assert load_config(str(tmp_path), environ=env)["SECRET_KEY"].startswith("q8Z")


def test_concurrent_first_starts_share_one_set_of_secrets(tmp_path):
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _i: load_config(str(tmp_path), environ={})["SECRET_KEY"], range(16)))
    assert len(set(results)) == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".secrets-")] == []


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf"])
def test_a_brokerage_must_be_a_finite_number(tmp_path, raw):
    with pytest.raises(ConfigError, match="ANALYZE_BROKERAGE_PER_ORDER"):
        load_config(str(tmp_path), environ={"ANALYZE_BROKERAGE_PER_ORDER": raw})
