"""The tool-call parser chosen for a base model (pure: a model folder in tmp_path)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lorag.chat_template import BUNDLED_CHAT_TEMPLATE
from service.engine.tool_parser import choose_tool_parser, parser_for


@pytest.mark.parametrize(
    ("template", "model_type", "parser"),
    [
        (BUNDLED_CHAT_TEMPLATE, "llama", "hermes"),  # the bundled SmolLM2 is a Llama model
        ("{{ '<|start_header_id|>ipython<|end_header_id|>' }}", "llama", "llama3_json"),
        ("{{ '<|python_tag|>' }}", "llama", "llama3_json"),
        ("{{ '<tool_call>' }}", "qwen2", "hermes"),
        ("{{ '[TOOL_CALLS]' }}", "mistral", "mistral"),
        ("", "qwen3", "hermes"),
        ("", "gemma3", "pythonic"),
        ("", "llama4", "llama4_pythonic"),
        ("{{ messages }}", "llama", None),  # a Llama with no tool format: no automatic choice
        ("", "", None),
    ],
)
def test_parser_for_the_model_family(template: str, model_type: str, parser: str | None) -> None:
    assert parser_for(template, model_type).parser == parser


def test_auto_reads_the_model_folder(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    choice = choose_tool_parser("auto", str(tmp_path))
    assert (choice.parser, choice.reason) == ("hermes", "model type qwen2")
    config = {"chat_template": "{{ '<|python_tag|>' }}"}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    assert choose_tool_parser("auto", str(tmp_path)).parser == "llama3_json"
    (tmp_path / "chat_template.jinja").write_text(BUNDLED_CHAT_TEMPLATE)  # read first
    assert choose_tool_parser("auto", str(tmp_path)).parser == "hermes"


def test_the_setting_overrides_or_turns_it_off(tmp_path: Path) -> None:
    (tmp_path / "chat_template.jinja").write_text(BUNDLED_CHAT_TEMPLATE)
    assert choose_tool_parser("llama3_json", str(tmp_path)).parser == "llama3_json"
    off = choose_tool_parser("none", str(tmp_path))
    assert off.parser is None and "LORAG_VLLM_TOOL_PARSER=none" in off.reason


def test_the_bundled_model_gets_hermes(base_model_dir: Path) -> None:
    assert choose_tool_parser("auto", str(base_model_dir)).parser == "hermes"
