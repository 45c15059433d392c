"""Strict parsing of environment variables for settings.

A bad value stops start-up with a sentence that names the variable, instead of a
traceback deep inside Django or, worse, a silently wrong default.
"""

from __future__ import annotations

import builtins
import ipaddress
import os
from collections.abc import Mapping

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(Exception):
    """Raised when an environment variable holds a value the clinic cannot run with."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class Env:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def str(self, name: builtins.str, default: builtins.str | None = None) -> builtins.str:
        value = self.environ.get(name)
        if value is None or value == "":
            if default is None:
                raise ConfigError(f"The environment variable {name} is required but is not set.")
            return default
        return value

    def bool(self, name: builtins.str, default: builtins.bool) -> builtins.bool:
        value = self.environ.get(name)
        if value is None or value == "":
            return default
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(
            f"The environment variable {name} must be true or false (1/0, yes/no, on/off); got {value!r}."
        )

    def int(
        self,
        name: builtins.str,
        default: builtins.int,
        *,
        minimum: builtins.int | None = None,
        maximum: builtins.int | None = None,
    ) -> builtins.int:
        value = self.environ.get(name)
        if value is None or value == "":
            return default
        try:
            number = int(value.strip())
        except ValueError:
            raise ConfigError(
                f"The environment variable {name} must be a whole number; got {value!r}."
            ) from None
        if minimum is not None and number < minimum:
            raise ConfigError(f"The environment variable {name} must be at least {minimum}; got {number}.")
        if maximum is not None and number > maximum:
            raise ConfigError(f"The environment variable {name} must be at most {maximum}; got {number}.")
        return number

    def list(self, name: builtins.str, default: builtins.list[builtins.str]) -> builtins.list[builtins.str]:
        value = self.environ.get(name)
        if value is None or value.strip() == "":
            return list(default)
        return [item.strip() for item in value.split(",") if item.strip()]

    def networks(self, name: builtins.str) -> tuple[Network, ...]:
        """Comma-separated IP addresses or CIDR networks (``10.0.0.5, 10.1.0.0/16, ::1``); empty by default.

        A network with host bits set (``10.0.0.5/8``) is refused rather than silently widened or narrowed."""
        networks: builtins.list[Network] = []
        for item in self.list(name, []):
            try:
                networks.append(ipaddress.ip_network(item, strict=True))
            except ValueError:
                try:
                    widened = ipaddress.ip_network(item, strict=False)
                except ValueError:
                    raise ConfigError(
                        f"The environment variable {name} must list IP addresses or networks such as "
                        f"10.0.0.5 or 10.0.0.0/24, separated by commas; {item!r} is neither."
                    ) from None
                raise ConfigError(
                    f"The environment variable {name} lists {item!r}, an address with a network size; "
                    f"write the address alone or the network {widened}."
                ) from None
        return tuple(networks)

    def choice(
        self, name: builtins.str, default: builtins.str, choices: tuple[builtins.str, ...]
    ) -> builtins.str:
        value = self.environ.get(name)
        if value is None or value == "":
            return default
        if value not in choices:
            raise ConfigError(
                f"The environment variable {name} must be one of {', '.join(choices)}; got {value!r}."
            )
        return value


def cache_from_url(name: builtins.str, url: builtins.str) -> dict[builtins.str, object]:
    """Django CACHES entry for a cache address.

    ``locmem://`` keeps the cache in each server process (fine for one process, the default);
    ``redis://host:port/db`` (or ``rediss://`` for TLS) shares it between every app server, which is what a
    deployment that scales out wants: derived figures such as the outcomes dashboard are then computed
    once per change for the whole deployment instead of once per worker.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "locmem":
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    if scheme in ("redis", "rediss"):
        return {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "kapclinic",
            "TIMEOUT": 3600,
        }
    raise ConfigError(
        f"The environment variable {name} must start with locmem://, redis:// or rediss://; got {url!r}."
    )
