"""The deployment in `docker-compose.yml` and `deploy/nginx.conf`, read as lorag reads them:
each gateway's environment passes lorag's own `Settings`, each vLLM replica's passes the
resolver plugin's checks, and the names that tie the pieces together agree (servers, ports,
the served model, the load balancer's routes). Docker cannot run on these machines, so the
containers themselves are not started here; the pieces they run are, elsewhere in the suite
(two gateways on one PostgreSQL, a second vLLM with the resolver plugin)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from lorag.settings import Settings
from service.engine.lora_resolver import PLUGIN_NAME, ResolverConfig

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s" * 64  # what `openssl rand -hex 32` gives: long enough for every key


def interpolate(text: str) -> str:
    """Compose's `${NAME:?message}` / `${NAME}` with every variable set to SECRET."""
    return re.sub(r"\$\{[A-Z_]+(:\?[^}]*)?\}", SECRET, text)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(interpolate((ROOT / "docker-compose.yml").read_text()))


@pytest.fixture(scope="module")
def nginx() -> str:
    return (ROOT / "deploy/nginx.conf").read_text()


def services_like(compose: dict[str, Any], prefix: str) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if name.startswith(prefix)}


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname and parts.port, url
    return parts.hostname, parts.port


def test_the_fleet_has_every_piece(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert len(services_like(compose, "gateway-")) == 2
    assert len(services_like(compose, "vllm-")) == 2
    assert {"lb", "postgres", "qdrant", "model"} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["qdrant"]["image"].startswith("qdrant/qdrant:")


def test_each_gateway_environment_is_valid_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    vllm_services = services_like(compose, "vllm-")
    for name, gateway in services_like(compose, "gateway-").items():
        env = {key: str(value) for key, value in gateway["environment"].items()}
        for key in [k for k in os.environ if k.startswith("LORAG_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = Settings()  # raises on a misspelt LORAG_ name (extra="forbid") or a bad value
        assert settings.engine == "remote" and settings.adapter_delivery == "resolver", name
        assert settings.registry_url is not None
        assert settings.registry_url.get_secret_value().startswith("postgresql://")
        assert host_port(settings.registry_url.get_secret_value())[0] == "postgres"
        assert settings.qdrant_url and host_port(settings.qdrant_url)[0] == "qdrant"
        assert settings.require_api_key and settings.admin_key is not None
        # every replica, and only replicas, at the port vLLM listens on
        assert {host_port(url) for url in settings.vllm_urls} == {
            (server, 8000) for server in vllm_services
        }
        # the gateways serve the model the replicas serve, from the same folder
        for replica in vllm_services.values():
            command = replica["command"]
            assert command[0] == settings.base_model
            assert f"--served-model-name={settings.model_name}" in command
        # the gateways share one adapter store: the resolver may reach either
        mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in gateway["volumes"]}
        assert mounts[str(settings.adapters_dir)] == "adapters"


def test_each_replica_runs_the_resolver_plugin_against_the_load_balancer(
    compose: dict[str, Any], nginx: str, tmp_path: Path
) -> None:
    for name, replica in services_like(compose, "vllm-").items():
        env = {key: str(value) for key, value in replica["environment"].items()}
        config = ResolverConfig.from_environment(env)
        assert config is not None, name
        assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "true"
        assert PLUGIN_NAME in env["VLLM_PLUGINS"].split(",")
        assert env["VLLM_API_KEY"] == SECRET  # the gateways' LORAG_VLLM_API_KEY
        assert "--middleware=service.engine.vllm_guard.GatewayOnly" in replica["command"]
        host, port = host_port(config.gateway_url)
        assert host == "lb" and f"listen {port};" in nginx
        # its cache is a volume of its own, not shared with anybody
        cache_volume = next(
            v.split(":")[0] for v in replica["volumes"] if v.split(":")[1] == str(config.cache_dir)
        )
        others = [
            v
            for other, s in compose["services"].items()
            if other != name
            for v in s.get("volumes", [])
        ]
        assert all(not v.startswith(f"{cache_volume}:") for v in others)


def test_the_load_balancer_spreads_over_both_gateways_and_hides_internal(
    compose: dict[str, Any], nginx: str
) -> None:
    upstream = re.search(r"upstream gateways \{(.*?)\}", nginx, re.S)
    assert upstream is not None
    servers = set(re.findall(r"server (\S+?):8000", upstream.group(1)))
    assert servers == set(services_like(compose, "gateway-"))
    public, internal = re.findall(r"server \{(.*?)\n    \}", nginx, re.S)
    assert "listen 80;" in public and "location /internal/ { return 404; }" in public
    assert "proxy_buffering off;" in public  # streamed answers pass event by event
    assert "location /internal/adapters/ { proxy_pass http://gateways; }" in internal
    published = compose["services"]["lb"]["ports"]
    assert published == ["8000:80"]  # the internal port is never published


def test_the_one_box_compose_file_is_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    text = interpolate((ROOT / "deploy/one-box.compose.yml").read_text())
    service = yaml.safe_load(text)["services"]["lorag"]
    for key in [k for k in os.environ if k.startswith("LORAG_")]:
        monkeypatch.delenv(key)
    for key, value in service["environment"].items():
        monkeypatch.setenv(key, str(value))
    settings = Settings()
    assert settings.engine == "embedded" and settings.qdrant_url == "http://qdrant:6333"
    assert (ROOT / "deploy" / service["build"].split("#")[0].strip() / "Dockerfile").is_file()
