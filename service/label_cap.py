"""A Prometheus label with a bounded number of values: tenants and modes come from users, and
every distinct value is a series Prometheus keeps, so past a cap new values read `other`."""

from __future__ import annotations

import threading

__all__ = ["OTHER", "CappedLabel"]

OTHER = "other"


class CappedLabel:
    """Passes the first `cap` distinct values through, and `other` for any value after them."""

    def __init__(self, cap: int):
        self.cap = cap
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) < self.cap:
                self._seen.add(value)
                return value
        return OTHER
