"""lorag's core: what every other package may use, importing nothing of theirs.

The core (imports only itself):
`settings`: the one `Settings`, read from `LORAG_*` once, then frozen.
`errors`: the error tree every package extends, and OpenAI's error envelope.
`names`: adapter, mode and tenant names, versions and `name@vN` references.
`base_model`: the served base model (bundled model, resolution, linear-layer shapes).
`jsonl`: JSON-lines files, every bad line reported at once.
`hardware`: the CPU's capabilities and the precision chosen from them.
`json_nesting`: how deeply a parsed JSON value nests (checked before anything recurses).
`pii`: personal data (emails, phones, cards, IBANs) in text replaced by placeholders.

Above it, still below every package (pure code, no I/O):
`retrieval_policy`: a mode's retrieval settings and how a request may narrow them.
`prompting`: prompt templates and sources placed in the prompt within a token budget.
`search_filter`: the rules of a search filter.
"""

__all__: list[str] = []
