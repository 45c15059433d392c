from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kapclinic.core.env import ConfigError, Env, cache_from_url

ROOT = Path(__file__).resolve().parents[3]


def test_bool_parsing() -> None:
    env = Env({"A": "yes", "B": "0", "C": "maybe"})
    assert env.bool("A", False) is True
    assert env.bool("B", True) is False
    assert env.bool("MISSING", True) is True
    with pytest.raises(ConfigError, match="C must be true or false"):
        env.bool("C", False)


def test_int_parsing_and_bounds() -> None:
    env = Env({"N": "15", "BAD": "ten", "LOW": "0"})
    assert env.int("N", 1) == 15
    with pytest.raises(ConfigError, match="BAD must be a whole number"):
        env.int("BAD", 1)
    with pytest.raises(ConfigError, match="LOW must be at least 1"):
        env.int("LOW", 5, minimum=1)


def test_required_and_choice() -> None:
    env = Env({"MODE": "staging"})
    with pytest.raises(ConfigError, match="SECRET_KEY is required"):
        env.str("SECRET_KEY")
    with pytest.raises(ConfigError, match="MODE must be one of"):
        env.choice("MODE", "a", ("a", "b"))


def test_cache_address() -> None:
    assert str(cache_from_url("CACHE_URL", "locmem://")["BACKEND"]).endswith("LocMemCache")
    redis = cache_from_url("CACHE_URL", "redis://127.0.0.1:6379/1")
    assert redis["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert redis["LOCATION"] == "redis://127.0.0.1:6379/1"
    with pytest.raises(ConfigError, match="CACHE_URL must start with locmem://, redis:// or rediss://"):
        cache_from_url("CACHE_URL", "memcached://127.0.0.1")
    with pytest.raises(ConfigError, match="CACHE_URL must start with"):
        cache_from_url("CACHE_URL", "127.0.0.1:6379")


@pytest.mark.parametrize(
    ("variables", "sentence"),
    [
        ({"KAP_ENV": "production"}, "SECRET_KEY is required"),
        ({"KAP_ENV": "production", "SECRET_KEY": "short"}, "SECRET_KEY must be at least 50"),
        (
            {"KAP_ENV": "development", "STAFF_IDLE_TIMEOUT_MINUTES": "soon"},
            "STAFF_IDLE_TIMEOUT_MINUTES must be a whole number",
        ),
        ({"KAP_ENV": "sandbox"}, "KAP_ENV must be one of"),
        ({"KAP_ENV": "development", "CACHE_URL": "memcached://x"}, "CACHE_URL must start with"),
        (
            {"KAP_ENV": "production", "SECRET_KEY": "s" * 50, "ALLOWED_HOSTS": "clinic.example.org"},
            "AUDIT_CHAIN_KEY is required in production",
        ),
        (
            {"KAP_ENV": "development", "AUDIT_CHAIN_KEY": "k1:too-short"},
            "The secret of key 'k1' in AUDIT_CHAIN_KEY is 9 characters long",
        ),
        (
            {"KAP_ENV": "development", "AUDIT_CHECKPOINT_WEBHOOK": "ftp://x"},
            "AUDIT_CHECKPOINT_WEBHOOK must start with https://",
        ),
        (
            {"KAP_ENV": "development", "TRUSTED_PROXIES": "10.0.0.2, nginx"},
            "TRUSTED_PROXIES must list IP addresses or networks",
        ),
    ],
)
def test_bad_configuration_stops_startup_with_a_sentence(variables: dict[str, str], sentence: str) -> None:
    unset = {"KAP_ENV", "SECRET_KEY", "DATABASE_URL", "ALLOWED_HOSTS", "AUDIT_CHAIN_KEY"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(variables)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "KAP Clinic cannot start" in result.stderr and sentence in result.stderr


def test_redis_cache_round_trip_when_reachable() -> None:
    """The shared cache a scaled-out deployment uses really works (Redis on 127.0.0.1:6379 when present)."""
    import socket

    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
    except OSError:
        pytest.skip("Redis is not reachable on 127.0.0.1:6379")
    from django.core.cache.backends.redis import RedisCache

    config = cache_from_url("CACHE_URL", "redis://127.0.0.1:6379/15")
    cache = RedisCache(str(config["LOCATION"]), {"KEY_PREFIX": config["KEY_PREFIX"]})
    cache.set("kapclinic-test-key", {"n": 1}, 30)
    assert cache.get("kapclinic-test-key") == {"n": 1}
    cache.delete("kapclinic-test-key")


@pytest.mark.parametrize(
    ("database_url", "max_age", "expected"),
    [
        ("sqlite:///var/settings-probe.sqlite3", None, 60),
        ("sqlite:///var/settings-probe.sqlite3", "0", 0),
        ("postgres://postgres@127.0.0.1:5432/test", None, 60),
        ("postgres://postgres@127.0.0.1:5432/test", "300", 300),
    ],
)
def test_database_connections_persist_between_requests(
    database_url: str, max_age: str | None, expected: int
) -> None:
    """Both engines keep a worker's connection open between requests (DB_CONN_MAX_AGE seconds); opening a
    SQLite connection per request cost each page 2-4 ms (docs/benchmarks.md, session 4)."""
    env = {k: v for k, v in os.environ.items() if k not in {"KAP_ENV", "DATABASE_URL", "DB_CONN_MAX_AGE"}}
    env.update(
        {
            "KAP_ENV": "development",
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "kapclinic.settings",
        }
    )
    if max_age is not None:
        env["DB_CONN_MAX_AGE"] = max_age
    probe = "from django.conf import settings as s; print(s.DATABASES['default']['CONN_MAX_AGE'])"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) == expected
