"""`/v1/embeddings` through the `openai` SDK: the knowledge base's own embedding model."""

from __future__ import annotations

import math

import httpx
import openai
import pytest

from ingest.embedding import BUNDLED_MODEL_NAME
from tests.clients.conftest import Clients

TEXTS = [
    "The Quentaro kettle boils water in three minutes.",
    "A kettle that heats water quickly.",
    "The stock market fell sharply on Tuesday.",
]


@pytest.fixture(scope="module")
def sdk(clients: Clients) -> openai.OpenAI:
    return openai.OpenAI(base_url=clients.url, api_key=clients.key, max_retries=0)


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_batch_in_float_and_base64_gives_the_same_normalized_vectors(sdk: openai.OpenAI) -> None:
    as_float = sdk.embeddings.create(model=BUNDLED_MODEL_NAME, input=TEXTS, encoding_format="float")
    # the SDK asks for base64 by default and decodes it: the same floats come out
    as_base64 = sdk.embeddings.create(model=BUNDLED_MODEL_NAME, input=TEXTS)
    assert as_float.model == BUNDLED_MODEL_NAME
    assert [item.index for item in as_float.data] == [0, 1, 2]
    vectors = [item.embedding for item in as_float.data]
    assert all(len(vector) == 384 for vector in vectors)
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-4) for v in vectors)
    for got, expected in zip(as_base64.data, vectors, strict=True):
        assert got.embedding == pytest.approx(expected, abs=1e-6)
    kettle, similar, unrelated = vectors
    assert cosine(kettle, similar) > cosine(kettle, unrelated) + 0.2
    assert as_float.usage.prompt_tokens == as_float.usage.total_tokens > len(TEXTS)
    one = sdk.embeddings.create(model=BUNDLED_MODEL_NAME, input=TEXTS[0], encoding_format="float")
    assert one.data[0].embedding == pytest.approx(kettle, abs=1e-5)


def test_what_the_model_cannot_do_is_refused_by_name(sdk: openai.OpenAI, clients: Clients) -> None:
    with pytest.raises(openai.BadRequestError) as shorter:
        sdk.embeddings.create(model=BUNDLED_MODEL_NAME, input="hi", dimensions=64)
    assert shorter.value.body["param"] == "dimensions" and "384" in shorter.value.body["message"]
    with pytest.raises(openai.BadRequestError) as ids:
        sdk.embeddings.create(model=BUNDLED_MODEL_NAME, input=[[101, 2023, 102]])
    assert ids.value.body["code"] == "unsupported_input"
    with pytest.raises(openai.NotFoundError) as unknown:
        sdk.embeddings.create(model="text-embedding-3-small", input="hi")
    assert BUNDLED_MODEL_NAME in unknown.value.body["message"]
    wrong_key = httpx.post(
        f"{clients.url}/embeddings",
        json={"model": BUNDLED_MODEL_NAME, "input": "hi"},
        headers={"authorization": "Bearer lrg-not-a-key"},
        timeout=30,
    )
    assert wrong_key.status_code == 401


def test_the_embedding_model_is_listed(sdk: openai.OpenAI) -> None:
    cards = {card.id: card for card in sdk.models.list()}
    assert cards[BUNDLED_MODEL_NAME].model_extra["lorag"] == {"embedding": True}
    assert cards["plain"].model_extra["max_model_len"] == 2048
