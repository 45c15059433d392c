"""``python manage.py score <instrument> <answer> ...``: score a paper form or a script's answers.

Prints exactly one JSON object on stdout with the keys ``instrument``, ``version``, ``total``,
``severity``, ``subscales``, ``flags`` and ``provisional_diagnosis``. Answers are item scores in item
order (PHQ-9: 9 answers, or 10 with the unscored difficulty item; GAD-7: 7; PCL-5: 20); ``-`` marks an
unanswered item (the result then has no total and the ``incomplete`` flag). Bad input prints one
sentence on stderr and exits with status 2.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from kapclinic.clinical.instruments import (
    INSTRUMENT_KEYS,
    AnswerError,
    UnknownInstrumentError,
    get_instrument,
    score,
)


class Command(BaseCommand):
    help = "Score a PHQ-9, GAD-7 or PCL-5 from item answers and print the result as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("instrument", help=f"one of {', '.join(INSTRUMENT_KEYS)}")
        parser.add_argument("answers", nargs="*", help="item scores in order; '-' for an unanswered item")
        parser.add_argument("--version-of-instrument", dest="instrument_version", default=None,
                            help="refuse unless the instrument definition has this version")  # fmt: skip

    def fail(self, sentence: str) -> None:
        self.stderr.write(sentence)
        sys.exit(2)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            instrument = get_instrument(options["instrument"], options["instrument_version"])
        except UnknownInstrumentError as exc:
            self.fail(str(exc))
            return
        answers: list[int | None] = []
        for position, raw in enumerate(options["answers"], start=1):
            if raw == "-":
                answers.append(None)
                continue
            try:
                answers.append(int(raw, 10))
            except ValueError:
                self.fail(
                    f"Answer {position} ({raw!r}) is not a whole number; give item scores such as 0 1 2 3."
                )
                return
        try:
            result = score(instrument, answers)
        except AnswerError as exc:
            self.fail(" ".join(exc.errors))
            return
        self.stdout.write(json.dumps(result.as_dict()))
