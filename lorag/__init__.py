"""lorag's core: what every other package may use, importing nothing of lorag's own.

`hardware`: the CPU's capabilities and the precision chosen from them.
`json_nesting`: how deeply a parsed JSON value nests (checked before anything recurses).
"""

__all__: list[str] = []
