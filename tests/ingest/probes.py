"""What the knowledge-base tests look at: a document's stored chunk payloads, and long texts
whose every paragraph shares one rare word (so any chunk of them answers one query)."""

from __future__ import annotations

from typing import Any

from ingest.knowledge import KnowledgeBase


def stored(kb: KnowledgeBase, tenant: str, doc_id: str) -> list[dict[str, Any]]:
    """Payloads of every stored chunk of one document of a tenant."""
    return [p.payload for p in kb.store.scroll(tenant, filter={"doc_id": doc_id})]


def long_text(marker: str, paragraphs: int) -> str:
    """`paragraphs` paragraphs of ~80 tokens about a quetzalcoatlus, told apart by `marker`."""
    return "\n\n".join(
        f"The quetzalcoatlus fact {marker}{i}: " + "it glided over ancient seas. " * 10
        for i in range(paragraphs)
    )
