"""Personal data scrubbing of training examples: every message's text and tool-call arguments.

The text-level scrubber (emails, phone numbers, Luhn-checked card numbers, mod-97-checked
IBANs -> `<EMAIL>`, `<PHONE>`, `<CARD>`, `<IBAN>`) lives in the core, `lorag.pii`, because
the knowledge base scrubs documents with it too and `ingest` may not import `train`. Its names
are re-exported here so that `from train.scrub import scrub_text` keeps working.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from lorag.pii import PLACEHOLDERS, iban_ok, luhn_ok, scrub_text
from train.examples import Example

__all__ = ["PLACEHOLDERS", "iban_ok", "luhn_ok", "scrub_example", "scrub_text"]


def scrub_example(example: Example, counts: Counter[str]) -> Example:
    """The example with personal data replaced in every message's text and in the
    arguments of its tool calls."""
    messages = []
    for message in example.messages:
        scrubbed = dict(message)
        if isinstance(message.get("content"), str):
            scrubbed["content"] = scrub_text(message["content"], counts)
        if message.get("tool_calls"):
            scrubbed["tool_calls"] = [
                {
                    **call,
                    "function": {
                        **call["function"],
                        "arguments": scrub_text(call["function"]["arguments"], counts),
                    },
                }
                for call in message["tool_calls"]
            ]
        messages.append(scrubbed)
    return dataclasses.replace(example, messages=tuple(messages))
