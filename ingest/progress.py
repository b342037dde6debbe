"""A tqdm progress bar for ingests: documents done, chunks written, chunks per second."""

from __future__ import annotations

from typing import Any

from ingest.models import ProgressEvent

__all__ = ["IngestProgressBar"]


class IngestProgressBar:
    """A progress callback (`ProgressFn`) drawing a tqdm bar on stderr; call `close()`."""

    def __init__(self, *, desc: str = "ingest", disable: bool | None = None, **tqdm_args: Any):
        from tqdm import tqdm

        self._bar = tqdm(desc=desc, unit="doc", dynamic_ncols=True, disable=disable, **tqdm_args)

    def __call__(self, event: ProgressEvent) -> None:
        bar = self._bar
        if bar.total != event.documents_total:
            bar.total = event.documents_total
        bar.update(event.documents_done - bar.n)
        elapsed = bar.format_dict.get("elapsed") or 0.0
        rate = event.chunks_done / elapsed if elapsed > 0 else 0.0
        bar.set_postfix(chunks=event.chunks_done, chunks_s=f"{rate:.1f}")

    def close(self) -> None:
        self._bar.close()
