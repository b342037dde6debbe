"""Personal data in text: emails, phone numbers, card numbers and IBANs become placeholders.

`scrub_text(text, counts)` replaces each finding with `<EMAIL>`, `<PHONE>`, `<CARD>` or
`<IBAN>` and adds to `counts`. Card numbers must pass the Luhn check and IBANs the ISO 7064
mod-97 check, so order numbers and other long digit runs survive. Phone numbers are digit
groups with at least 9 digits (7 with a `+country` or `(area)` prefix); dates, versions and
IPv4 addresses are left alone. Names are not scrubbed (no reliable offline detector here).

In the core because two packages that may not import each other use it: training data
(`train.scrub`, per example) and the knowledge base (`ingest.scrubbing`, per document).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

__all__ = ["PLACEHOLDERS", "iban_ok", "luhn_ok", "scrub_text"]

PLACEHOLDERS = {"email": "<EMAIL>", "iban": "<IBAN>", "card": "<CARD>", "phone": "<PHONE>"}
"""What each kind of finding becomes; the keys are the kinds counted."""

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]?\d{2,4}){1,4}(?!\w)"
)
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_DATE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}")


def luhn_ok(digits: str) -> bool:
    """Whether `digits` (digits only) pass the Luhn check every payment card number passes:
    a random 16-digit run fails it nine times in ten, so order numbers mostly survive."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    """Whether `candidate` (spaces allowed) is an IBAN by the ISO 7064 mod-97 check."""
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


def _is_phone(match: str) -> bool:
    digits = sum(char.isdigit() for char in match)
    if _IPV4.fullmatch(match) or _DATE.fullmatch(match):
        return False
    if match.startswith("+") or "(" in match:
        return 7 <= digits <= 15
    if match.isdigit():  # one unbroken run: long ones are more often order or account numbers
        return 9 <= digits <= 12
    return 9 <= digits <= 15


def _is_card(match: str) -> bool:
    return luhn_ok(re.sub(r"\D", "", match))


# In this order: an IBAN or a card number would otherwise be taken for a phone number.
_DETECTORS: tuple[tuple[str, re.Pattern[str], Callable[[str], bool] | None], ...] = (
    ("email", _EMAIL, None),
    ("iban", _IBAN, iban_ok),
    ("card", _CARD, _is_card),
    ("phone", _PHONE, _is_phone),
)


def scrub_text(text: str, counts: Counter[str]) -> str:
    """`text` with personal data replaced by placeholders; adds what it found to `counts`."""
    for kind, pattern, accept in _DETECTORS:

        def swap(
            match: re.Match[str], kind: str = kind, accept: Callable[[str], bool] | None = accept
        ) -> str:
            found = match.group(0)
            if accept is not None and not accept(found):
                return found
            counts[kind] += 1
            return PLACEHOLDERS[kind]

        text = pattern.sub(swap, text)
    return text
