"""Bad input never reaches a 500 (issue 12).

Every URL of the access matrix, as every persona the matrix lets in: the page is rendered, the names of
its form fields (input/select/textarea, with the form's action and method) and of the query parameters
its own links carry are read from the HTML, and each one is sent nasty values (huge and negative
integers, non-ASCII digits, impossible and out-of-range dates, 10k-character strings, NUL bytes, bidi
controls) with the form's other fields left at their defaults. Any 5xx, or an exception escaping a
view, fails the test with the URL, field and value.

Bounded for a 2-core CI machine: the first persona let in sends every nasty value to every field; the
others send one value per field (rotating through the list), and a hypothesis test adds a small budget
of generated values on randomly drawn URLs, personas and fields."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kapclinic.core.tests.test_access_matrix import ALL_URLS, MATRIX
from kapclinic.testing.matrix import PERSONAS, Entry

BIDI = "\u202e\u2066\u202a"
INTS = ("9223372036854775808", "-9223372036854775809", "²", "1e400")
DATES = ("0001-01-01", "9999-12-31", "2026-02-30", "١٢")
DATETIMES = ("9999-12-31T23:00", "0001-01-01T00:00", "2026-13-01T00:00")
TEXTS = ("x" * 10_000, "a\x00b", f"{BIDI}evil")
#: The values a field gets, by its input type; anything else (query parameters, selects, hidden fields)
#: gets the mixed list.
BY_KIND: dict[str, tuple[str, ...]] = {
    "date": DATES,
    "datetime-local": DATETIMES,
    "time": ("25:61", "²", "x" * 10_000),
    "number": INTS,
    "text": (*TEXTS, "²"),
    "textarea": TEXTS,
    "email": TEXTS,
    "search": (*TEXTS, "²"),
    "tel": TEXTS,
    "radio": ("9223372036854775808", "²", "a\x00b"),
    "select": ("9223372036854775808", "²", "a\x00b"),
    "checkbox": ("9223372036854775808", "a\x00b"),
}
#: A form with more choice fields than this (a long questionnaire) sends them one value each.
MAX_CHOICE_FIELDS = 12
CHOICE_KINDS = frozenset({"radio", "select", "checkbox"})
#: Kinds sent one value each (rotating) by the first persona too: free text, which every form cleans
#: alike (core.forms.KapForm), and the common query parameters a page does not itself link to.
LIGHT = frozenset({"text", "textarea", "email", "search", "tel", "common"})
MIXED = ("9223372036854775808", "-1", "²", "0001-01-01", "9999-12-31", "9999-12-31T23:00", "a\x00b")
ALL_AT_ONCE = ("9223372036854775808", "²", "9999-12-31", "a\x00b")


def _pick(values: tuple[str, ...], rotation: Iterator[int]) -> str:
    return values[next(rotation) % len(values)]


#: Query parameters read by views that no link or form on the page may carry.
COMMON_GET = ("page", "date", "next", "before", "staff", "resource", "patient", "kind", "at", "id", "status")
#: Forms never posted: signing out ends the persona's session for the rest of the walk.
SKIP_ACTIONS = ("/account/logout/",)


@dataclass
class Target:
    method: str
    url: str
    base: dict[str, Any]
    names: list[str] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)  # field name -> input type ("select", "textarea"...)


class _Forms(HTMLParser):
    """The forms of a page (action, method, fields with their default values) and its links' query keys."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Target] = []
        self.link_params: set[str] = set()
        self._form: Target | None = None
        self._select: str | None = None
        self._select_default: str | None = None
        self._first_option: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "a" and "?" in a.get("href", ""):
            query = urlsplit(a["href"]).query
            self.link_params.update(k for k, _ in parse_qsl(query, keep_blank_values=True))
        elif tag == "form":
            self._form = Target(a.get("method", "get").lower(), a.get("action", ""), {})
        elif self._form is None:
            return
        elif tag in ("input", "button") and a.get("name") and a["name"] != "csrfmiddlewaretoken":
            name, kind = a["name"], a.get("type", "text").lower()
            if kind in ("checkbox", "radio"):
                if "checked" in a or (kind == "radio" and name not in self._form.base):
                    self._form.base[name] = a.get("value", "on")
            elif kind not in ("submit", "button", "image", "reset") or name not in self._form.base:
                self._form.base.setdefault(name, a.get("value", ""))
            if name not in self._form.names:
                self._form.names.append(name)
                self._form.kinds[name] = kind
        elif tag == "select" and a.get("name"):
            self._select, self._select_default, self._first_option = a["name"], None, None
        elif tag == "option" and self._select is not None:
            value = a.get("value", "")
            if self._first_option is None and value:
                self._first_option = value
            if "selected" in a:
                self._select_default = value
        elif tag == "textarea" and a.get("name"):
            self._textarea = a["name"]
            self._form.base[a["name"]] = ""

    def handle_data(self, data: str) -> None:
        if self._form is not None and self._textarea is not None:
            self._form.base[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if self._form is None:
            return
        if tag == "select" and self._select is not None:
            default = self._select_default if self._select_default is not None else self._first_option
            self._form.base[self._select] = default or ""
            self._form.names.append(self._select)
            self._form.kinds[self._select] = "select"
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self._form.names.append(self._textarea)
            self._form.kinds[self._textarea] = "textarea"
            self._textarea = None
        elif tag == "form":
            self.forms.append(self._form)
            self._form = None


def _let_in(entry: Entry) -> list[str]:
    """The personas the matrix lets through to the view's own code: a page (200), a form refused or
    accepted (400, 409, 429, a redirect after a POST); anonymous only on public pages."""
    out = []
    for persona in PERSONAS:
        status = entry.expect[persona]
        if status in (401, 403, 404, 405, 410) or (persona == "anonymous" and status not in (200, 400)):
            continue
        out.append(persona)
    return out


def _url(name: str, world: Any) -> str:
    entry = MATRIX[name]
    kwargs = entry.kwargs(world) if entry.kwargs else {}
    if entry.setup:
        kwargs.update(entry.setup(world))
    return reverse(name, kwargs=kwargs) + (f"?{entry.query}" if entry.query else "")


def _targets(client: Client, name: str, url: str, world: Any) -> list[Target]:
    """What on this URL takes input: the page's forms, the POST entry's data, its GET parameters."""
    entry = MATRIX[name]
    path, query = url.split("?", 1) if "?" in url else (url, "")
    links: set[str] = set()
    targets: list[Target] = []
    if entry.method == "get":
        response = client.get(url)
        if response.status_code == 200 and "html" in response.headers.get("Content-Type", ""):
            parser = _Forms()
            parser.feed(response.content.decode("utf-8", "replace"))
            links = parser.link_params
            for form in parser.forms:
                action = urljoin(path, form.url) if form.url else url
                if urlsplit(action).netloc or any(action.startswith(s) for s in SKIP_ACTIONS):
                    continue
                targets.append(Target(form.method, action, form.base, form.names, form.kinds))
    else:
        data = entry.data(world) if entry.data else {}
        targets.append(Target("post", url, dict(data), list(data)))
    base = dict(parse_qsl(query, keep_blank_values=True))
    names = sorted(set(base) | links | set(COMMON_GET))
    kinds = {n: "common" for n in COMMON_GET if n not in base and n not in links}
    targets.append(Target("get", path, base, names, kinds))
    return targets


def _send(client: Client, target: Target, changes: dict[str, str]) -> str | None:
    """One request with the target's defaults overridden by ``changes``; a failure message, or None."""
    data = {**target.base, **changes}
    shown = ", ".join(f"{k}={v[:30]!r}" for k, v in list(changes.items())[:3])
    where = f"{target.method.upper()} {target.url} {shown}"
    try:
        send = client.get if target.method == "get" else client.post
        response = send(target.url, data)
    except Exception as exc:  # the view raised: that is a 500 for a user
        return f"{where}: {type(exc).__name__}: {exc!s:.200}"
    if response.status_code >= 500 and response.status_code != 503:
        return f"{where}: HTTP {response.status_code}"
    return None


def _login(client: Client, world: Any, persona: str) -> None:
    client.logout()
    user = world.persona(persona)
    if user is not None:
        client.force_login(user)


@pytest.mark.parametrize("name", ALL_URLS)
def test_nasty_values_never_answer_5xx(name: str, world: Any) -> None:
    """The first persona let in: every field gets every value of its kind with the other fields at their
    defaults (so a value reaches the code behind a valid form), and every value once in all fields at
    the same time (free text and the common query parameters: one value each). Each other persona: one
    request with every field set to a value of its kind, rotating."""
    entry = MATRIX[name]
    personas = _let_in(entry)
    if not personas:
        pytest.skip("no persona is let in")
    url = _url(name, world)
    client = Client()
    failures: list[str] = []
    rotation = itertools.count()
    for i, persona in enumerate(personas):
        _login(client, world, persona)
        for target in _targets(client, name, url, world):
            sends: list[dict[str, str]] = []
            kinds = {n: BY_KIND.get(target.kinds.get(n, ""), MIXED) for n in target.names}
            if i == 0:
                choices = [n for n in target.names if target.kinds.get(n) in CHOICE_KINDS]
                light = LIGHT | (CHOICE_KINDS if len(choices) > MAX_CHOICE_FIELDS else set())
                for n in target.names:
                    free = target.kinds.get(n, "") in light
                    sends.extend({n: v} for v in ((_pick(kinds[n], rotation),) if free else kinds[n]))
                sends.extend(dict.fromkeys(target.names, v) for v in ALL_AT_ONCE)
            elif target.names:
                sends.append({n: _pick(kinds[n], rotation) for n in target.names})
            SENT[name] = SENT.get(name, 0) + len(sends)
            for changes in sends:
                problem = _send(client, target, changes)
                if problem:
                    failures.append(f"{persona}: {problem}")
            if target.method == "post":  # a POST may have ended the persona's session
                _login(client, world, persona)
    assert not failures, f"{name} ({url}): {len(failures)} failures:\n" + "\n".join(failures[:20])


_TEXT = st.characters(exclude_categories=["Cs"])
NASTY_VALUES = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.text(alphabet=st.sampled_from("0123456789²³¹١٢٣٤٥６７-:.T \x00\u202e\u2066\u2069"), max_size=25),
    st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)).map(dt.date.isoformat),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59)).map(
        lambda d: d.strftime("%Y-%m-%dT%H:%M")
    ),
    st.text(alphabet=_TEXT, max_size=60),
    st.integers(min_value=1, max_value=4).map(lambda n: "\u202e" * n + "z" * 10_000),
)
_REACHABLE = [n for n in ALL_URLS if _let_in(MATRIX[n])]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
@given(data=st.data())
def test_generated_values_never_answer_5xx(data: st.DataObject, world: Any) -> None:
    name = data.draw(st.sampled_from(_REACHABLE), label="url")
    persona = data.draw(st.sampled_from(_let_in(MATRIX[name])), label="persona")
    key = (id(world), name, persona)
    if key not in _TARGETS:  # once per URL and persona, so every example draws from the same lists
        if (id(world), name) not in _URLS:
            _URLS[(id(world), name)] = _url(name, world)
        client = Client()
        _login(client, world, persona)
        _TARGETS[key] = [t for t in _targets(client, name, _URLS[(id(world), name)], world) if t.names]
    client = Client()
    _login(client, world, persona)
    target = data.draw(st.sampled_from(_TARGETS[key]), label="target")
    field_name = data.draw(st.sampled_from(target.names), label="field")
    value = data.draw(NASTY_VALUES, label="value")
    problem = _send(client, target, {field_name: value})
    assert problem is None, f"{name} as {persona}: {problem}"


_URLS: dict[tuple[int, str], str] = {}
_TARGETS: dict[tuple[int, str, str], list[Target]] = {}
SENT: dict[str, int] = {}
