"""`lorag adapters ...` and `lorag tenants ...` through the root CLI (`cli.main.main`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.errors import BaseModelUnavailable
from adapters.from_settings import base_model_info, open_registry
from cli.main import main
from lorag.settings import BUNDLED_MODEL_NAME, Settings


@pytest.fixture
def lorag(tmp_path: Path, base_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    """lorag(*argv) -> (exit code, stdout, stderr), with settings pointing at a fresh data dir."""
    monkeypatch.setenv("LORAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LORAG_BASE_MODEL", str(base_model_dir))
    monkeypatch.setenv("LORAG_MODEL_NAME", BUNDLED_MODEL_NAME)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_adapter_and_tenant_workflow(lorag, lora_a: Path, lora_b: Path, tmp_path: Path) -> None:
    code, out, _ = lorag("tenants", "create", "acme", "--name", "ACME Corp")
    assert code == 0 and "will not be shown again" in out
    key = next(line.split()[-1] for line in out.splitlines() if line.startswith("API key:"))
    settings = Settings(data_dir=tmp_path / "data")
    assert open_registry(settings).tenant_for_key(key).id == "acme"

    code, out, _ = lorag("adapters", "import", str(lora_a), "--name", "support", "--owner", "acme")
    assert (code, out.split()[:2]) == (0, ["imported", "support@v1"])
    options = ["--notes", "better", "--metrics", '{"format_pass": 1.0}', "--json"]
    code, out, _ = lorag(
        "adapters", "import", str(lora_b), "--name", "support", "--owner", "acme", *options
    )
    imported = json.loads(out)
    assert (imported["served_name"], imported["notes"], imported["metrics"]) == (
        "support@v2",
        "better",
        {"format_pass": 1.0},
    )

    code, out, _ = lorag("adapters", "list")
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["ADAPTER", "RANK", "TARGETS", "OWNER"]
    assert [line.split()[:4] for line in lines[1:]] == [
        ["support@v1", "8", "q_proj,v_proj", "acme"],
        ["support@v2", "8", "q_proj,v_proj", "acme"],
    ]
    code, out, _ = lorag("adapters", "list", "--json")
    assert [v["version"] for v in json.loads(out)] == [1, 2]

    # imported versions never passed a gate: promoting one needs --force, recorded as forced
    set_support = ("tenants", "set-mode", "acme", "support", "support")
    code, _, err = lorag(*set_support, "--retrieval", '{"top_k": 4}')
    assert code == 2 and "support@v2 never passed a gate" in err and "--force" in err
    code, out, _ = lorag(*set_support, "--retrieval", '{"top_k": 4}', "--force")
    assert (code, out.strip()) == (
        0,
        "acme:support -> support@v2 (default) (forced: recorded in its history)",
    )
    code, out, _ = lorag("tenants", "set-mode", "acme", "plain", "base", "--default")
    assert out.strip() == "acme:plain -> base (default)"

    code, out, _ = lorag("tenants", "show", "acme", "--json")
    shown = json.loads(out)
    assert shown["display_name"] == "ACME Corp"
    assert [(m["name"], m["target"], m["is_default"]) for m in shown["modes"]] == [
        ("support", "support@v2", False),
        ("plain", "base", True),
    ]
    # retrieval settings are validated and stored with their defaults filled in
    assert shown["modes"][0]["retrieval"]["top_k"] == 4
    assert shown["modes"][0]["retrieval"]["search"] == "hybrid"
    assert shown["modes"][1]["retrieval"] == {}
    code, out, _ = lorag("tenants", "show", "acme")
    assert "support@v2" in out and "top_k" in out
    code, out, _ = lorag("tenants", "list")
    assert out.splitlines()[1].split()[:5] == ["acme", "ACME", "Corp", "2", "plain"]

    code, out, _ = lorag("adapters", "show", "support", "--json")
    shown = json.loads(out)
    assert shown["served_name"] == "support@v2" and shown["used_by"] == ["acme:support"]
    assert Path(shown["path"], "adapter_model.safetensors").is_file()
    code, out, _ = lorag("adapters", "show", "support@v1")
    assert "support@v1" in out and "used by:" in out
    code, out, _ = lorag("adapters", "verify", "support@v1")
    assert code == 0 and "ok" in out

    # history and rollback: v2 (forced) -> v1 (forced) -> rollback to v2 -> rollback to v1
    assert lorag("tenants", "set-mode", "acme", "support", "support@v1", "--force")[0] == 0
    code, out, _ = lorag("tenants", "rollback", "acme", "support")
    assert (code, out.strip()) == (0, "acme:support: support@v1 -> support@v2 (rolled back)")
    code, out, _ = lorag("tenants", "history", "acme", "support", "--json")
    history = [(c["action"], c["from_target"], c["to_target"]) for c in json.loads(out)]
    assert history == [
        ("rollback", "support@v1", "support@v2"),
        ("repoint", "support@v2", "support@v1"),
        ("create", None, "support@v2"),
    ]
    changes = json.loads(out)
    assert [c["forced"] for c in changes] == [False, True, True]
    assert {c["gate"] for c in changes} == {"never gated"}
    assert all(c["actor"].startswith("cli") for c in changes)
    code, out, _ = lorag("tenants", "history", "acme")
    rows = out.splitlines()
    assert rows[0].split() == ["WHEN", "MODE", "ACTION", "FROM", "TO", "GATE", "BY", "ALSO"]
    assert "never gated (FORCED)" in rows[2] and len(rows) == 5  # plain's creation too

    code, _, err = lorag("adapters", "delete", "support@v2")
    assert code == 2 and err.startswith("error: support@v2 is used by acme:support")
    code, _, err = lorag("adapters", "delete", "support")
    assert code == 2 and "needs a version" in err
    assert lorag("tenants", "remove-mode", "acme", "support")[0] == 0
    code, out, _ = lorag("adapters", "delete", "support@v2")
    assert (code, out.strip()) == (0, "deleted support@v2")

    code, out, _ = lorag("tenants", "rotate-key", "acme")
    assert code == 0 and "old key no longer works" in out
    assert open_registry(settings).tenant_for_key(key) is None
    code, _, err = lorag("tenants", "delete", "acme")
    assert code == 2 and "owns adapter versions support@v1" in err
    assert lorag("adapters", "delete", "support@v1")[0] == 0
    assert lorag("tenants", "delete", "acme") == (0, "deleted tenant acme\n", "")
    assert lorag("tenants", "list")[1] == "no tenants\n"


def test_bad_input_prints_an_error(
    lorag, lora_a: Path, ia3: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = lorag("adapters", "import", str(ia3), "--name", "x")
    assert code == 2 and "peft_type is 'IA3'" in err
    code, _, err = lorag("adapters", "import", str(lora_a), "--name", "../x")
    assert code == 2 and "invalid adapter name '../x'" in err
    code, _, err = lorag("tenants", "show", "ghost")
    assert code == 2 and err == "error: tenant 'ghost' not found\n"
    assert lorag("adapters", "list") == (0, "no adapters\n", "")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:  # argparse refuses bad JSON before any handler
        lorag("tenants", "set-mode", "a", "b", "base", "--retrieval", "[1]")
    assert exited.value.code == 2
    assert "expected a JSON object" in capsys.readouterr().err


def test_base_model_info_from_settings(base_model_dir: Path, tmp_path: Path) -> None:
    info = base_model_info(Settings(data_dir=tmp_path, base_model=str(base_model_dir)))
    assert info.name == base_model_dir.name and len(info.linear_shapes) == 210
    named = base_model_info(
        Settings(data_dir=tmp_path, base_model=str(base_model_dir), model_name="m")
    )
    assert named.name == "m"
    with pytest.raises(BaseModelUnavailable, match="local Hugging Face cache"):
        base_model_info(Settings(data_dir=tmp_path, base_model="no-such-org/no-such-model"))
