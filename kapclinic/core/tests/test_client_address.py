"""One client address for the audit trail, the inquiry rate limit and the sign-in lockout.

X-Forwarded-For is believed only from a proxy listed in TRUSTED_PROXIES (empty by default); then the
right-most address that is not a trusted proxy is the client. Before, the first hop of the header was
taken from anyone: the audit log stored forged addresses and rotating the header let every inquiry
through the rate limit.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.test import RequestFactory, override_settings
from django.urls import reverse

from kapclinic.audit.models import AuditEvent
from kapclinic.core.actor import client_ip
from kapclinic.core.env import ConfigError, Env
from kapclinic.intake import services as intake_services
from kapclinic.intake.models import Inquiry
from kapclinic.testing.factories import PASSWORD

PROXY = "10.0.0.2"
BEHIND_PROXY = override_settings(TRUSTED_PROXIES=(ipaddress.ip_network("10.0.0.0/24"),))


def _ip(remote: str, forwarded: str | None = None) -> str | None:
    meta: dict[str, Any] = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return client_ip(RequestFactory().get("/", **meta))


# --- the function --------------------------------------------------------------------------------


def test_no_trusted_proxy_by_default_so_the_header_is_ignored() -> None:
    assert _ip("203.0.113.7", "198.51.100.1") == "203.0.113.7"
    assert _ip("203.0.113.7", "10.0.0.2, 198.51.100.1") == "203.0.113.7"
    assert _ip("2001:db8::7", "198.51.100.1") == "2001:db8::7"


@BEHIND_PROXY
def test_untrusted_peer_header_ignored_even_when_proxies_are_configured() -> None:
    assert _ip("203.0.113.7", "198.51.100.1") == "203.0.113.7"


@BEHIND_PROXY
def test_trusted_proxy_gives_the_right_most_untrusted_address() -> None:
    assert _ip(PROXY, "198.51.100.1") == "198.51.100.1"
    # The client wrote the left part; the proxy appended what it saw. Only that is believed.
    assert _ip(PROXY, "1.2.3.4, 5.6.7.8, 198.51.100.1") == "198.51.100.1"
    # A chain of trusted proxies is walked past.
    assert _ip(PROXY, "198.51.100.1, 10.0.0.9,10.0.0.3") == "198.51.100.1"
    # No header: the proxy itself; only trusted hops: the furthest of them.
    assert _ip(PROXY) == PROXY
    assert _ip(PROXY, "10.0.0.9") == "10.0.0.9"
    # A hop that is not an address stops the walk at the last trusted proxy seen.
    assert _ip(PROXY, "198.51.100.1, unknown") == PROXY
    assert _ip(PROXY, "198.51.100.1, garbage, 10.0.0.9") == "10.0.0.9"


@override_settings(TRUSTED_PROXIES=(ipaddress.ip_network("10.0.0.2/32"), ipaddress.ip_network("fd00::/8")))
def test_ipv6_and_mapped_addresses() -> None:
    assert _ip("::ffff:10.0.0.2", "198.51.100.1") == "198.51.100.1"
    assert _ip("fd00::5", "2001:DB8:0:0::9") == "2001:db8::9"


def test_trusted_proxies_setting_parsing() -> None:
    env = Env({"P": " 10.0.0.5, 10.1.0.0/16 ,::1", "BAD": "10.0.0.5, proxy.local", "HOST": "10.0.0.5/8"})
    assert [str(n) for n in env.networks("P")] == ["10.0.0.5/32", "10.1.0.0/16", "::1/128"]
    assert env.networks("MISSING") == ()
    with pytest.raises(ConfigError, match=r"BAD must list IP addresses or networks .* 'proxy\.local'"):
        env.networks("BAD")
    with pytest.raises(ConfigError, match=r"write the address alone or the network 10\.0\.0\.0/8"):
        env.networks("HOST")


# --- the audit trail ------------------------------------------------------------------------------


def _chart_view_ip(client: Any, world: Any, **meta: str) -> str:
    client.force_login(world.nurse)
    before = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    assert client.get(reverse("patients:chart", args=[world.patient.pk]), **meta).status_code == 200
    event = AuditEvent.objects.get(pk__gt=before)
    return event.ip


def test_audit_ignores_a_forged_header_from_an_untrusted_peer(world: Any, client: Any) -> None:
    ip = _chart_view_ip(client, world, REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR="198.51.100.66")
    assert ip == "203.0.113.7"


@BEHIND_PROXY
def test_audit_honours_the_trusted_proxy(world: Any, client: Any) -> None:
    ip = _chart_view_ip(client, world, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="9.9.9.9, 198.51.100.66")
    assert ip == "198.51.100.66"


# --- the public inquiry rate limit ----------------------------------------------------------------


def _inquiry(client: Any, n: int, **meta: str) -> int:
    data = {
        "name": "Sam Rivera",
        "email": "sam@example.test",
        "phone": "",
        "preferred_contact_time": "morning",
        "message": "Low mood for a long time.",
        "consent_to_contact": "on",
        "website": "",
        "token": f"tok-{n}-{meta.get('HTTP_X_FORWARDED_FOR', '')}",
    }
    return int(client.post(reverse("public:inquiry"), data, **meta).status_code)


@pytest.fixture
def public_clinic(world: Any) -> Any:
    world.clinic.is_public = True
    world.clinic.save(update_fields=["is_public"])
    return world.clinic


def test_rotating_forged_headers_do_not_bypass_the_rate_limit(client: Any, public_clinic: Any) -> None:
    limit = intake_services.RATE_LIMIT_COUNT
    codes = [
        _inquiry(client, i, REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}")
        for i in range(limit + 5)
    ]
    assert codes == [302] * limit + [429] * 5
    assert Inquiry.objects.count() == limit


@BEHIND_PROXY
def test_behind_a_trusted_proxy_the_limit_is_per_client(client: Any, public_clinic: Any) -> None:
    limit = intake_services.RATE_LIMIT_COUNT
    # The client prepends a different forged address each time; the proxy appends the real one.
    codes = [
        _inquiry(client, i, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=f"198.51.100.{i}, 203.0.113.7")
        for i in range(limit + 3)
    ]
    assert codes == [302] * limit + [429] * 3
    # Another person behind the same proxy is not limited by the first one.
    assert _inquiry(client, 99, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="203.0.113.8") == 302


# --- the sign-in lockout (django-axes) -------------------------------------------------------------


def _login(client: Any, email: str, password: str = PASSWORD, **meta: str) -> int:
    return int(client.post("/account/login/", {"username": email, "password": password}, **meta).status_code)


ATTACKER = "203.0.113.7"
NURSE_DESK = "198.51.100.20"


@override_settings(AXES_FAILURE_LIMIT=3)
def test_lockout_ignores_a_forged_header_from_an_untrusted_peer(world: Any, client: Any) -> None:
    for i in range(3):
        _login(client, world.nurse.email, "wrong", REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}
    # Rotating the header did not spread the failures: the attacker's address is locked.
    assert _login(client, world.nurse.email, REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR="192.0.2.50") == 429
    assert _login(client, world.nurse.email, REMOTE_ADDR=NURSE_DESK) == 302


@override_settings(AXES_FAILURE_LIMIT=3)
def test_forged_header_cannot_lock_out_a_colleague(world: Any, client: Any) -> None:
    # Claiming the nurse's own address in the header locks only the sender's real address.
    for _ in range(3):
        _login(client, world.nurse.email, "wrong", REMOTE_ADDR=ATTACKER, HTTP_X_FORWARDED_FOR=NURSE_DESK)
    assert _login(client, world.nurse.email, REMOTE_ADDR=NURSE_DESK) == 302


@BEHIND_PROXY
@override_settings(AXES_FAILURE_LIMIT=3)
def test_behind_a_trusted_proxy_the_lockout_is_per_client_address(world: Any, client: Any) -> None:
    attacker = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": ATTACKER}
    for _ in range(3):
        _login(client, world.nurse.email, "wrong", **attacker)
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ATTACKER}
    assert _login(client, world.nurse.email, **attacker) == 429
    # The nurse, through the same proxy from her own address, still signs in.
    assert _login(client, world.nurse.email, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=NURSE_DESK) == 302
