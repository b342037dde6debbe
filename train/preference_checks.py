"""What data inspection checks in a preference file beyond what it checks in any file.

`lorag data inspect prefs.jsonl` runs the usual checks on the preferred conversations (the
prompt with its preferred answer: lengths, coverage, duplicates, personal data, the task),
but not the same-prompt-different-answers error: several pairs for one prompt, each with its
own preferred answer, are ordinary preference data. Two checks of its own:

    reversed_pair   error    the same prompt with answers A over B in one pair and B over A
                             in another: DPO is pulled both ways and learns neither
    length_bias     warning  the preferred answer is the shorter (or the longer) one in
                             nearly every pair: DPO learns length as easily as what you meant,
                             and will write shorter (longer) answers whatever they say

The non-preferred answers are not measured for length or coverage: training never writes
them, it only lowers their probability.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from train.findings import Finding
from train.preferences import PreferencePair

__all__ = ["LENGTH_BIAS_SHARE", "MIN_PAIRS_FOR_BIAS", "preference_findings"]

LENGTH_BIAS_SHARE = 0.9
"""The share of pairs with the shorter (or longer) answer preferred that is called a bias."""

MIN_PAIRS_FOR_BIAS = 10
"""Fewer pairs and the share says nothing."""


def _reversed(pairs: Sequence[PreferencePair]) -> list[Finding]:
    seen: dict[tuple[str, str, str], int] = {}
    findings = []
    for pair in pairs:
        prompt = json.dumps([list(pair.tools), list(pair.prompt)], sort_keys=True)
        preferred = json.dumps(pair.preferred, sort_keys=True)
        other = json.dumps(pair.non_preferred, sort_keys=True)
        earlier = seen.get((prompt, other, preferred))
        if earlier is not None:
            findings.append(
                Finding.at(
                    "error",
                    "reversed_pair",
                    f"lines {earlier} and {pair.line} prefer each other's answer to the same "
                    "prompt: DPO would be pulled both ways; keep the one you mean",
                    (earlier, pair.line),
                )
            )
        seen.setdefault((prompt, preferred, other), pair.line)
    return findings


def _length_bias(pairs: Sequence[PreferencePair]) -> list[Finding]:
    if len(pairs) < MIN_PAIRS_FOR_BIAS:
        return []
    shorter = [p.line for p in pairs if len(p.preferred_text) < len(p.non_preferred_text)]
    longer = [p.line for p in pairs if len(p.preferred_text) > len(p.non_preferred_text)]
    for lines, word in ((shorter, "shorter"), (longer, "longer")):
        share = len(lines) / len(pairs)
        if share >= LENGTH_BIAS_SHARE:
            return [
                Finding.at(
                    "warning",
                    "length_bias",
                    f"the preferred answer is the {word} one in {share:.0%} of the pairs: DPO "
                    f"learns 'write {word}' as readily as what you meant; add pairs where the "
                    f"preferred answer is the {'longer' if word == 'shorter' else 'shorter'} "
                    "one, unless length is the point",
                    (),
                    share=round(share, 3),
                )
            ]
    return []


def preference_findings(pairs: Sequence[PreferencePair]) -> list[Finding]:
    """The preference-only findings (see the module docstring)."""
    return _reversed(pairs) + _length_bias(pairs)
