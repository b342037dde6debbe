"""Holding under faults with the real engine: the session gateway (`lorag serve`, a real vLLM).

The suite's only restart of vLLM (about a minute on a CPU) is here: vLLM hung mid-stream
(SIGSTOP: the process exists, `/health` never answers). The supervisor's probes mark it down
(callers get 503 at once, not a hang), kill it (its stream ends with an error event in
OpenAI's shape) and restart it; then it answers as before, adapters included (loaded again on
demand). The gateway fixture probes every second with a 3 s timeout, 3 failures
(tests/conftest.py), so it is found within ~13 s. A vLLM that dies by itself is restarted
through the same start path: `test_gateway_fast_faults.py` kills a stand-in process for that,
in seconds.

And one without a restart: a gateway with the remote engine in front of the session's real vLLM
and a dead server (nothing listens) answers every request, and reports the dead one down.

`test_gateway_fast_faults.py` checks the same logic against fakes in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lorag.settings import Settings
from service.engine import RemoteEngine, build_engine
from tests.conftest import Gateway, alive, free_port
from tests.factories import make_lora_adapter
from tests.service.fake_vllm import gateway_client, gateway_settings, sse_data

TENANT = "faults"
PROMPT = "Describe your favourite season in two sentences."
LONG = "Tell a long story about a lighthouse keeper and the sea, with many details."


@dataclass
class Tenant:
    key: str


@pytest.fixture(scope="module")
def tenant(gateway: Gateway, base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A tenant of its own whose `support` mode runs an adapter (seeded like other tests')."""
    gateway.wait_ready()
    created = gateway.admin("POST", "/admin/tenants", json={"id": TENANT})
    assert created.status_code == 201, created.text
    folder = make_lora_adapter(base_model_dir, tmp_path_factory.mktemp("faults") / "a", seed=1)
    body = {"path": str(folder), "name": "faults-support", "owner": TENANT}
    assert gateway.admin("POST", "/admin/adapters", json=body).status_code == 201
    mode = {"target": "faults-support@v1", "force": True}  # a random, ungated adapter
    answer = gateway.admin("PUT", f"/admin/tenants/{TENANT}/modes/support", json=mode)
    assert answer.status_code == 200, answer.text
    return Tenant(created.json()["api_key"])


def chat(gw: Gateway, key: str, model: str, max_tokens: int = 24) -> str:
    reply = gw.openai(api_key=key).chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": PROMPT}],
        temperature=0,
        max_tokens=max_tokens,
    )
    return reply.choices[0].message.content or ""


def ask(gw: Gateway, timeout_s: float) -> httpx.Response:
    body = {
        "model": gw.base_name,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4,
    }
    return httpx.post(f"{gw.url}/v1/chat/completions", json=body, timeout=timeout_s)


def assert_unavailable(error: dict) -> None:
    """OpenAI's error shape, 'service unavailable', and no internal address in the message."""
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "service_unavailable"
    assert error["code"] == "engine_unavailable"
    assert "127.0.0.1" not in error["message"] and "http" not in error["message"]


def test_engine_hung_mid_stream_is_found_killed_and_restarted_with_its_adapters(
    gw: Gateway, tenant: Tenant
) -> None:
    before = chat(gw, tenant.key, "support")
    base_before = chat(gw, "none", gw.base_name)
    pid = gw.engine_pid()
    restarts = gw.ready().json()["engine"]["restarts"]
    body = {
        "model": "support",
        "messages": [{"role": "user", "content": LONG}],
        "max_tokens": 400,
        "ignore_eos": True,  # a vLLM field, relayed: the stream lasts long enough to be cut
        "temperature": 0,
        "stream": True,
    }
    events: list[str] = []
    headers = {"authorization": f"Bearer {tenant.key}"}
    url = f"{gw.url}/v1/chat/completions"
    stopped = time.monotonic()
    try:
        with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(line.removeprefix("data: "))
                    if len(events) == 3:
                        os.kill(pid, signal.SIGSTOP)  # exists, holds its port, answers nothing
                        stopped = time.monotonic()
        # the probes found it hung and killed it: the stream ended by itself, with an error
        # event in OpenAI's shape after the tokens, well before the client's own timeout
        took = time.monotonic() - stopped
        started = time.monotonic()
        again = ask(gw, 10)  # down now: refused at once, not a hang
        at_once = time.monotonic() - started
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)  # if it was not killed, never leave it stopped
    assert len(events) > 3 and "[DONE]" not in events
    assert all("choices" in json.loads(event) for event in events[:-1])
    assert_unavailable(json.loads(events[-1])["error"])
    assert took < 20, took
    assert again.status_code == 503 and at_once < 1.0
    assert_unavailable(again.json()["error"])
    assert not alive(pid)  # killed (SIGKILL works on a stopped process), not left behind
    assert httpx.get(f"{gw.url}/ready", timeout=10).status_code == 503
    assert httpx.get(f"{gw.url}/health", timeout=10).status_code == 200

    gw.wait_ready(timeout_s=300)
    assert gw.engine_pid() != pid
    engine = gw.ready().json()["engine"]
    assert engine["restarts"] == restarts + 1 and engine["last_error"] is None
    assert chat(gw, "none", gw.base_name) == base_before
    assert chat(gw, tenant.key, "support") == before  # the adapter, loaded again on demand


# --- remote engine: a dead server beside a real one ------------------------------------------
async def _through_a_remote_gateway(
    engine: RemoteEngine, settings: Settings, base_name: str
) -> list[httpx.Response]:
    """20 requests, half of them streams, half chat and half text; 10 at once, 10 in turn."""

    async def send(client: httpx.AsyncClient, number: int) -> httpx.Response:
        chat = number % 4 < 2
        body: dict[str, object] = {"model": base_name, "max_tokens": 4, "temperature": 0}
        body |= {"messages": [{"role": "user", "content": "Hi"}]} if chat else {"prompt": "Hi"}
        body["stream"] = number % 2 == 1
        path = "/v1/chat/completions" if chat else "/v1/completions"
        return await client.post(path, json=body)

    async with gateway_client(settings, engine=engine) as client:
        answers = list(await asyncio.gather(*(send(client, n) for n in range(10))))
        answers += [await send(client, n) for n in range(10, 20)]
    return answers


def test_a_dead_remote_server_beside_the_real_engine_fails_no_request(
    gw: Gateway, base_model_dir: Path, tmp_path: Path
) -> None:
    live, dead = gw.vllm_url(), f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = gateway_settings(
        tmp_path / "data", [dead, live], base_model_dir, vllm_api_key=gw.vllm_api_key
    )
    engine = build_engine(settings)
    assert isinstance(engine, RemoteEngine)
    answers = asyncio.run(_through_a_remote_gateway(engine, settings, gw.base_name))
    assert [a.status_code for a in answers] == [200] * 20, [a.text for a in answers]
    for answer in answers:
        if answer.headers["content-type"].startswith("text/event-stream"):
            events = sse_data(answer.text)
            assert events[-1] == "[DONE]" and not any('"error"' in e for e in events)
        else:
            assert answer.json()["choices"]
    assert engine.describe()["down"] == [dead]
    assert engine.urls == [live]
