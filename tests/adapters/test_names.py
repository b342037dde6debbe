"""Names, versions and `name@vN` references (pure logic)."""

from __future__ import annotations

import pytest

from adapters.errors import InvalidName
from lorag.names import (
    AdapterRef,
    check_adapter_name,
    check_mode_name,
    check_tenant_id,
    check_version,
    format_ref,
    parse_ref,
)


@pytest.mark.parametrize("name", ["support", "a", "v2.1-chat_x", "0abc", "a" * 64])
def test_valid_adapter_names(name: str) -> None:
    assert check_adapter_name(name) == name
    assert check_mode_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["../x", "..", ".hidden", "a/b", "a\\b", "", "Support", "a..b", "a" * 65, "x\n", " x", "-x", 3],
)
def test_invalid_adapter_names(name: object) -> None:
    with pytest.raises(InvalidName) as err:
        check_adapter_name(name)
    assert err.value.status == 400 and err.value.param == "name"


def test_base_is_reserved_for_adapters_only() -> None:
    with pytest.raises(InvalidName, match="reserved"):
        check_adapter_name("base")
    assert check_mode_name("base") == "base"


@pytest.mark.parametrize("tenant", ["acme", "acme-eu_2", "0"])
def test_valid_tenant_ids(tenant: str) -> None:
    assert check_tenant_id(tenant) == tenant


@pytest.mark.parametrize("tenant", ["a.b", "Acme", "", "../x", "-a", "a" * 65])
def test_invalid_tenant_ids(tenant: str) -> None:
    with pytest.raises(InvalidName, match="tenant id"):
        check_tenant_id(tenant)


def test_versions() -> None:
    assert check_version(1) == 1
    for bad in (0, -1, True, "1", 1.0, None):
        with pytest.raises(InvalidName):
            check_version(bad)


def test_refs_round_trip() -> None:
    assert parse_ref("support@v3") == AdapterRef("support", 3)
    assert str(parse_ref("support@v3")) == "support@v3" == format_ref("support", 3)
    assert parse_ref("support") == AdapterRef("support", None)
    assert str(AdapterRef("support")) == "support"
    assert parse_ref("a.b@v12") == AdapterRef("a.b", 12)


@pytest.mark.parametrize("text", ["x@3", "x@v0", "x@v", "x@v01", "@v1", "x@v1@v2", "../x@v1"])
def test_bad_refs(text: str) -> None:
    with pytest.raises(InvalidName):
        parse_ref(text)


def test_ref_requiring_a_version() -> None:
    with pytest.raises(InvalidName, match="support@vN"):
        parse_ref("support", require_version=True)
    assert parse_ref("support@v2", require_version=True).version == 2
