"""One marker for "the caller did not pass this fact: read it here".

Selectors and services that a page may hand a fact it has already read for this request (so each fact is
read once) default that argument to ``NOT_READ``. ``None`` cannot serve, because None is a real answer
("there is no signed plan", "no baseline reading yet"). A parameter whose None is not a real answer
defaults to None instead. This is the project's one such marker: do not define another."""

from __future__ import annotations

from typing import Any, Final

NOT_READ: Final[Any] = object()
