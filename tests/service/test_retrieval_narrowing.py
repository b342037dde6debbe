"""A request narrows a mode's retrieval, never escapes it: with a mode's `score_threshold`
the search kind (whose scores the threshold is measured in) stays the mode's; a mode's
retrieval `filter` is checked when the mode is set, not first when a request uses it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from lorag.retrieval_policy import RetrievalOverride, mode_settings, narrowed, normalized
from lorag.settings import Settings
from service.app import build_app
from service.engine.remote import RemoteEngine
from service.errors import InvalidRequest
from tests.conftest import ADMIN_KEY, free_port

ADMIN = {"x-admin-key": ADMIN_KEY}


def test_a_request_cannot_switch_search_under_the_modes_threshold() -> None:
    settings = mode_settings({"top_k": 4, "search": "dense", "score_threshold": 0.5})
    assert settings is not None
    for other in ("hybrid", "sparse"):
        with pytest.raises(InvalidRequest) as raised:
            narrowed(settings, RetrievalOverride(search=other))
        assert raised.value.param == "lorag.retrieval.search"
        assert "score_threshold" in raised.value.message
    # naming the mode's own search is no change; a stricter threshold still narrows
    same = narrowed(settings, RetrievalOverride(search="dense", score_threshold=0.7))
    assert (same.search, same.score_threshold) == ("dense", 0.7)


def test_without_a_mode_threshold_a_request_may_pick_the_search() -> None:
    settings = mode_settings({"top_k": 4})
    assert settings is not None
    assert narrowed(settings, RetrievalOverride(search="sparse")).search == "sparse"
    # the request's own threshold is measured in the search it picks
    mine = narrowed(settings, RetrievalOverride(search="dense", score_threshold=0.3))
    assert (mine.search, mine.score_threshold) == ("dense", 0.3)


@pytest.mark.parametrize(
    "bad",
    [
        {"tenant": "other"},  # another tenant's points
        {"bad key!": "x"},
        {"lang": {"$ne": "en"}},
        {"lang": []},
        {"lang": ["en", 1]},
    ],
)
def test_a_bad_mode_filter_is_refused_when_the_mode_is_set(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest) as raised:
        normalized({"top_k": 2, "filter": bad})
    assert raised.value.param == "retrieval.filter"
    assert raised.value.message.startswith("retrieval.filter: ")


def test_a_good_mode_filter_is_kept() -> None:
    stored = normalized({"filter": {"lang": "en", "doc_id": ["a", "b"], "metadata.year": 2024}})
    assert stored is not None and stored["filter"]["lang"] == "en"


def _app(tmp_path: Path) -> FastAPI:
    settings = Settings(data_dir=tmp_path / "data", admin_key=ADMIN_KEY)
    return build_app(settings, engine=RemoteEngine([f"http://127.0.0.1:{free_port()}"]))


def test_put_mode_with_a_bad_filter_is_a_400_naming_the_field(tmp_path: Path) -> None:
    app = _app(tmp_path)

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://lorag") as client:
                created = await client.post("/admin/tenants", json={"id": "acme"}, headers=ADMIN)
                assert created.status_code == 201, created.text
                path = "/admin/tenants/acme/modes/rag"
                bad = {"target": "base", "retrieval": {"filter": {"tenant": "other"}}}
                good = {"target": "base", "retrieval": {"filter": {"lang": "en"}}}
                return [
                    await client.put(path, json=bad, headers=ADMIN),
                    await client.put(path, json=good, headers=ADMIN),
                    await client.get("/admin/tenants/acme", headers=ADMIN),
                ]
        finally:
            await app.state.lorag.upstream.close()

    refused, accepted, shown = asyncio.run(scenario())
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["param"] == "retrieval.filter" and error["type"] == "invalid_request_error"
    assert accepted.status_code == 200, accepted.text
    modes = shown.json()["modes"]
    assert [(m["name"], m["retrieval"]["filter"]) for m in modes] == [("rag", {"lang": "en"})]
