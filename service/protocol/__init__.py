"""Wire types: what clients send and receive. No logic beyond validation."""

__all__: list[str] = []
