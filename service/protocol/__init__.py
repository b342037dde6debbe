"""Wire types: what clients send and receive. No logic beyond validation."""
