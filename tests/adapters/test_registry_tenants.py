"""The registry's tenants, API keys and modes, on each backend: defaults, ownership isolation,
in-use deletes, several processes at once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.api_keys import api_key_hash
from adapters.errors import Conflict, InvalidInput, InvalidName, NotFound
from adapters.sql_registry import SqlRegistry
from lorag.base_model import BaseModelInfo
from lorag.settings import Settings

MAX_RANK = 16


@pytest.fixture
def with_adapters(
    registry: SqlRegistry, base_info: BaseModelInfo, lora_a: Path, lora_b: Path
) -> SqlRegistry:
    """acme and globex; shared `general` v1; acme-owned `support` v1, v2."""
    registry.create_tenant("acme", "ACME")
    registry.create_tenant("globex", "Globex")
    registry.import_adapter(lora_a, "general", base=base_info, max_rank=MAX_RANK)
    for folder in (lora_a, lora_b):
        registry.import_adapter(folder, "support", base=base_info, max_rank=MAX_RANK, owner="acme")
    return registry


def test_tenant_keys(registry: SqlRegistry, database_text: Callable[[], str]) -> None:
    tenant, key = registry.create_tenant("acme", "ACME Corp")
    assert (tenant.id, tenant.display_name) == ("acme", "ACME Corp")
    assert key.startswith("lrg-") and len(key) > 40
    assert registry.tenant_for_key(key) == tenant
    assert registry.tenant_for_key(key + "x") is None
    assert registry.tenant_for_key("") is None
    dump = database_text()
    assert api_key_hash(key) in dump and key not in dump  # only its hash is kept
    _, other_key = registry.create_tenant("globex")
    assert other_key != key and registry.tenant_for_key(other_key).id == "globex"

    new_key = registry.rotate_key("acme")
    assert new_key != key
    assert registry.tenant_for_key(key) is None
    assert registry.tenant_for_key(new_key) == tenant


def test_tenant_lifecycle(registry: SqlRegistry) -> None:
    _, key = registry.create_tenant("acme")
    with pytest.raises(Conflict, match="already exists"):
        registry.create_tenant("acme")
    with pytest.raises(InvalidName):
        registry.create_tenant("ACME/x")
    registry.create_tenant("beta")
    assert [t.id for t in registry.list_tenants()] == ["acme", "beta"]
    registry.set_mode("acme", "plain", "base")
    registry.delete_tenant("acme")
    assert registry.tenant_for_key(key) is None
    for call in (registry.get_tenant, registry.list_modes, registry.delete_tenant):
        with pytest.raises(NotFound, match="tenant 'acme' not found"):
            call("acme")
    with pytest.raises(NotFound):
        registry.rotate_key("acme")
    registry.create_tenant("acme")  # the id is free again, with no modes left over
    assert registry.list_modes("acme") == []


def test_first_mode_is_the_default(with_adapters: SqlRegistry) -> None:
    registry = with_adapters
    assert registry.default_mode("acme") is None
    chat = registry.set_mode("acme", "chat", "general@v1")
    plain = registry.set_mode("acme", "plain", "base")
    assert chat.is_default and not plain.is_default
    assert (plain.adapter, plain.version, plain.target, plain.is_base) == (None, None, "base", True)
    assert registry.default_mode("acme") == chat
    plain = registry.set_mode("acme", "plain", "base", default=True)
    assert plain.is_default and not registry.get_mode("acme", "chat").is_default
    assert [m.name for m in registry.list_modes("acme")] == ["chat", "plain"]
    assert [m.position for m in registry.list_modes("acme")] == [0, 1]
    registry.set_mode("acme", "plain", "base", default=False)
    assert registry.default_mode("acme") is None


def test_removing_the_default_leaves_no_default(with_adapters: SqlRegistry) -> None:
    registry = with_adapters
    registry.set_mode("acme", "chat", "general")
    registry.set_mode("acme", "plain", "base")
    registry.remove_mode("acme", "chat")
    assert registry.default_mode("acme") is None
    assert [m.name for m in registry.list_modes("acme")] == ["plain"]
    with pytest.raises(NotFound, match="tenant 'acme' has no mode 'chat'"):
        registry.remove_mode("acme", "chat")


def test_name_alone_means_latest_at_the_time(
    with_adapters: SqlRegistry, base_info: BaseModelInfo, lora_wide: Path
) -> None:
    registry = with_adapters
    mode = registry.set_mode("acme", "support", "support", retrieval={"top_k": 3})
    assert mode.target == "support@v2" and mode.retrieval == {"top_k": 3}
    registry.import_adapter(lora_wide, "support", base=base_info, max_rank=16, owner="acme")
    assert registry.get_mode("acme", "support").target == "support@v2"  # does not follow
    repointed = registry.set_mode("acme", "support", "support@v1")
    assert repointed.target == "support@v1"
    assert repointed.retrieval == {"top_k": 3}  # kept when not given
    assert registry.set_mode("acme", "support", "support@v1", retrieval={}).retrieval == {}


def test_owned_adapters_are_invisible_to_other_tenants(with_adapters: SqlRegistry) -> None:
    registry = with_adapters
    with pytest.raises(NotFound) as owned:
        registry.set_mode("globex", "support", "support@v1")
    with pytest.raises(NotFound) as absent:
        registry.set_mode("globex", "support", "nothing@v1")
    assert owned.value.message == absent.value.message.replace("nothing", "support")
    with pytest.raises(NotFound, match="adapter 'support' not found"):
        registry.set_mode("globex", "support", "support")
    assert registry.list_modes("globex") == []
    assert registry.set_mode("acme", "support", "support@v1").target == "support@v1"
    assert registry.set_mode("globex", "chat", "general").target == "general@v1"  # shared


def test_delete_is_refused_while_a_mode_uses_the_version(with_adapters: SqlRegistry) -> None:
    registry = with_adapters
    registry.set_mode("acme", "chat", "general@v1")
    registry.set_mode("globex", "default", "general@v1")
    registry.set_mode("acme", "support", "support@v2")
    assert [m.qualified_name for m in registry.modes_using("general", 1)] == [
        "acme:chat",
        "globex:default",
    ]
    digest = registry.get_version("general", 1).sha256
    with pytest.raises(Conflict) as err:
        registry.delete_version("general", 1)
    assert err.value.status == 409
    assert "acme:chat" in err.value.message and "globex:default" in err.value.message
    assert registry.get_version("general", 1).sha256 == digest
    registry.set_mode("acme", "chat", "base")
    registry.remove_mode("globex", "default")
    registry.delete_version("general", 1)
    with pytest.raises(NotFound):
        registry.get_version("general", 1)
    assert registry.store.exists(digest)  # same content as support@v1, which stays
    registry.delete_version("support", 1)
    assert not registry.store.exists(digest)


def test_tenant_owning_adapters_cannot_be_deleted(with_adapters: SqlRegistry) -> None:
    registry = with_adapters
    with pytest.raises(Conflict, match="support@v1, support@v2"):
        registry.delete_tenant("acme")
    registry.delete_version("support", 1)
    registry.delete_version("support", 2)
    registry.delete_tenant("acme")


def test_mode_input_errors(with_adapters: SqlRegistry) -> None:
    registry = with_adapters
    with pytest.raises(InvalidName):
        registry.set_mode("acme", "../x", "base")
    with pytest.raises(InvalidName):
        registry.set_mode("acme", "chat", "general@3")
    with pytest.raises(InvalidInput) as err:
        registry.set_mode("acme", "chat", "base", retrieval=["top_k"])  # type: ignore[arg-type]
    assert err.value.param == "retrieval"
    with pytest.raises(NotFound, match="tenant 'nobody' not found"):
        registry.set_mode("nobody", "chat", "base")
    with pytest.raises(NotFound, match="'general@v9' not found"):
        registry.set_mode("acme", "chat", "general@v9")
    assert registry.list_modes("acme") == []


def test_several_processes_share_the_registry(
    registry: SqlRegistry, registry_settings: Settings
) -> None:
    script = textwrap.dedent(
        """
        import sys
        from adapters.from_settings import open_registry
        from lorag.settings import Settings

        registry = open_registry(Settings())  # LORAG_DATA_DIR, LORAG_REGISTRY_URL
        worker = sys.argv[1]
        for i in range(15):
            tenant = f"w{worker}-{i}"
            _, key = registry.create_tenant(tenant)
            registry.set_mode(tenant, "plain", "base")
            assert registry.tenant_for_key(key).id == tenant
            registry.rotate_key(tenant)
        registry.close()
        """
    )
    url = registry_settings.registry_url
    env = {
        **os.environ,
        "LORAG_DATA_DIR": str(registry_settings.data_dir),
        "LORAG_REGISTRY_URL": "" if url is None else url.get_secret_value(),  # blank: SQLite
    }
    repo = Path(__file__).resolve().parents[2]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(n)], cwd=repo, env=env, stderr=subprocess.PIPE
        )
        for n in range(4)
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=120)
        assert worker.returncode == 0, stderr.decode()
    tenants = registry.list_tenants()
    assert len(tenants) == 60
    assert all(registry.default_mode(t.id).name == "plain" for t in tenants)
