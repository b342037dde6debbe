"""Who owns a trained adapter: `lorag train --promote T:M` keeps it T's unless told otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.errors import NotFound
from adapters.sqlite_registry import SqliteRegistry
from adapters.store import AdapterStore
from cli.main import build_parser
from train.errors import InvalidOption
from train.publish import check_publish_options, publish_owner


def test_promoting_to_a_tenant_makes_the_adapter_that_tenants() -> None:
    assert publish_owner(promote="acme:support", owner=None, shared=False) == "acme"
    assert publish_owner(promote="acme:support", owner="acme", shared=False) == "acme"


def test_shared_only_when_asked_or_when_no_tenant_is_named() -> None:
    assert publish_owner(promote="acme:support", owner=None, shared=True) is None
    assert publish_owner(promote=None, owner=None, shared=True) is None
    assert publish_owner(promote=None, owner="acme", shared=False) == "acme"
    assert publish_owner(promote=None, owner=None, shared=False) is None


def test_contradictory_ownership_is_refused() -> None:
    with pytest.raises(InvalidOption) as both:
        publish_owner(promote=None, owner="acme", shared=True)
    assert "--shared" in both.value.message and "--owner" in both.value.message
    with pytest.raises(InvalidOption) as other:
        publish_owner(promote="acme:support", owner="globex", shared=False)
    assert other.value.param == "owner" and "acme" in other.value.message


def test_the_command_line_says_so() -> None:
    args = build_parser().parse_args(["train", "--data", "x.jsonl", "--promote", "acme:support"])
    assert (args.owner, args.shared) == (None, False)
    assert build_parser().parse_args(["train", "--shared"]).shared is True
    train = build_parser()._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    text = " ".join(train.format_help().split())
    assert "default: the --promote tenant" in text
    assert "the tenant's own" in text  # build-raft's data is the tenant's


def test_an_unknown_owner_is_refused_before_training(tmp_path: Path) -> None:
    registry = SqliteRegistry(tmp_path / "registry.sqlite3", AdapterStore(tmp_path / "store"))
    registry.create_tenant("acme")
    check_publish_options(registry, "support", "acme:support", owner="acme")
    with pytest.raises(NotFound):
        check_publish_options(registry, "support", None, owner="ghost")
