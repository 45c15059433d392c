"""The one domain exception: a service refuses with sentences a person can act on, and changes nothing.

    raise DomainError("Only a prescriber can order the dose.")
    raise DomainError(field_errors={"staff": ["Dr Lee is already booked at 10:00."]})

Views catch it and show `messages` (or `str(exc)`), and put `field_errors` on the form with
`exc.add_to_form(form)`. Optimistic-concurrency conflicts stay `core.concurrency.ConflictError` (409);
`kapclinic.clinical` keeps its own pure exceptions, which services turn into a DomainError.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class DomainError(Exception):
    """A refusal the person who asked must read: one sentence per problem, optionally keyed by form field.
    Nothing was stored."""

    def __init__(
        self,
        messages: Sequence[str] | str = (),
        field_errors: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.messages: list[str] = [messages] if isinstance(messages, str) else list(messages)
        self.field_errors: dict[str, list[str]] = {k: list(v) for k, v in (field_errors or {}).items()}
        shown = self.messages or [m for msgs in self.field_errors.values() for m in msgs]
        super().__init__(" ".join(shown))

    @property
    def message(self) -> str:
        """All of it in one sentence (the messages, or the field errors when there are none)."""
        return str(self)

    @property
    def all_messages(self) -> list[str]:
        """Every sentence: the messages, then the field errors."""
        return self.messages + [m for msgs in self.field_errors.values() for m in msgs]

    def add_to_form(self, form: Any) -> None:
        """Put the refusal on a Django form: field errors on their fields (when the form has them, else at
        the top), messages at the top."""
        for field, msgs in self.field_errors.items():
            for msg in msgs:
                form.add_error(field if field in form.fields else None, msg)
        for msg in self.messages:
            form.add_error(None, msg)
