"""`/v1/knowledge/...`: a tenant's documents, ingest jobs and search."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/knowledge")
