"""Reading training files: OpenAI chat JSONL, prompt/completion JSONL, alpaca JSONL and CSV.

`load_examples(path, ...)` parses every record, collects a problem for EVERY bad one (line
number and reason) and raises one `InvalidData` listing them all, so nothing is trained on a
file with errors. Formats:

    chat        {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
                OpenAI's fine-tuning chat format, tool calling included: "tools" (function
                signatures), assistant "tool_calls" (content may then be null), "tool"
                messages with a "tool_call_id", and "weight" 0/1 on assistant messages
    completion  {"prompt": "...", "completion": "..."}
    alpaca      {"instruction": "...", "input": "..." (optional), "output": "..."}
    csv         a header row, then one example per row (`--prompt-column`, `--completion-column`)

`auto` picks csv for a .csv/.tsv file, otherwise looks at the keys of the first JSON object.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

from lorag.jsonl import BadLine
from train.errors import InvalidData
from train.examples import ROLES, DataFormat, Example, Message

__all__ = [
    "CSV_COMPLETION_COLUMNS",
    "CSV_PROMPT_COLUMNS",
    "FORMATS",
    "detect_format",
    "load_examples",
    "parse_chat_record",
]

FORMATS: tuple[str, ...] = ("auto", "chat", "completion", "alpaca", "csv")
CSV_PROMPT_COLUMNS = ("prompt", "question", "instruction", "input")
CSV_COMPLETION_COLUMNS = ("completion", "answer", "response", "output")


class _BadRecord(Exception):
    """One record's problem (internal: collected, then reported together)."""


def load_examples(
    path: Path,
    data_format: str = "auto",
    *,
    prompt_column: str | None = None,
    completion_column: str | None = None,
) -> tuple[list[Example], DataFormat]:
    """Parse `path`; return its examples and the format used, or raise `InvalidData`."""
    if data_format not in FORMATS:
        raise InvalidData(f"unknown format {data_format!r}; one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise InvalidData(f"training file not found: {path}", param=str(path))
    raw = path.read_bytes()
    fmt: DataFormat = detect_format(path, raw) if data_format == "auto" else data_format  # type: ignore[assignment]
    if fmt == "csv":
        examples, problems = _read_csv(raw, prompt_column, completion_column)
    else:
        examples, problems = _read_jsonl(raw, _PARSERS[fmt])
    if problems:
        listing = "\n".join(f"  {p}" for p in problems)
        raise InvalidData(
            f"{path.name}: {len(problems)} bad record(s) ({fmt} format), nothing was trained:\n"
            f"{listing}",
            param=str(path),
            problems=problems,
        )
    if not examples:
        raise InvalidData(f"{path.name}: no training records", param=str(path))
    return examples, fmt


def detect_format(path: Path, raw: bytes) -> DataFormat:
    """Guess the format from the file name, else from the first parseable JSON object."""
    if path.suffix.lower() in (".csv", ".tsv"):
        return "csv"
    for _, text in _lines(raw):
        try:
            record = json.loads(text or "")
        except ValueError:
            continue
        if isinstance(record, dict):
            if "preferred_output" in record or "non_preferred_output" in record:
                raise InvalidData(
                    f"{path.name} is in OpenAI's preference format (input, preferred_output, "
                    "non_preferred_output): train on it with --method dpo",
                    param=str(path),
                )
            if "messages" in record:
                return "chat"
            if "instruction" in record:
                return "alpaca"
            if "prompt" in record or "completion" in record:
                return "completion"
    raise InvalidData(
        f"{path.name}: cannot tell the format (no JSON object with 'messages', 'prompt' or "
        "'instruction'); pass --format",
        param=str(path),
    )


# --- JSONL ---------------------------------------------------------------------------------


def _lines(raw: bytes) -> Iterator[tuple[int, str | None]]:
    """Non-blank lines with their 1-based numbers; a line that is not UTF-8 comes as None."""
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            yield number, line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            yield number, None


_Parsed = tuple[tuple[Message, ...], tuple[dict[str, object], ...]]
"""A record's messages and its tools (empty where the format has none)."""


def _read_jsonl(
    raw: bytes, parse: Callable[[dict[str, object]], _Parsed]
) -> tuple[list[Example], list[str]]:
    examples: list[Example] = []
    problems: list[str] = []
    for number, text in _lines(raw):
        if text is None:
            problems.append(f"line {number}: not valid UTF-8")
            continue
        try:
            record = json.loads(text)
        except ValueError as exc:
            problems.append(f"line {number}: broken JSON ({exc})")
            continue
        if not isinstance(record, dict):
            problems.append(f"line {number}: expected a JSON object, got {type(record).__name__}")
            continue
        try:
            messages, tools = parse(record)
            examples.append(Example(messages, line=number, tools=tools))
        except _BadRecord as exc:
            problems.append(f"line {number}: {exc}")
    return examples, problems


def _text_field(record: dict[str, object], name: str, *, required: bool = True) -> str:
    if name not in record or record[name] is None:
        if required:
            raise _BadRecord(f"missing field '{name}'")
        return ""
    value = record[name]
    if not isinstance(value, str):
        raise _BadRecord(f"field '{name}' must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise _BadRecord(f"field '{name}' is empty")
    return value


def _parse_chat(record: dict[str, object]) -> _Parsed:
    if "messages" not in record:
        raise _BadRecord("missing field 'messages'")
    messages = record["messages"]
    if not isinstance(messages, list) or not messages:
        raise _BadRecord("'messages' must be a non-empty list")
    tools = _parse_tools(record.get("tools"))
    names = {str(tool["function"]["name"]) for tool in tools}  # type: ignore[index]
    parsed: list[Message] = []
    call_ids: set[str] = set()
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise _BadRecord(f"{where} must be an object")
        role = message.get("role")
        if role not in ROLES:
            raise _BadRecord(f"{where}: unknown role {role!r} (expected one of {', '.join(ROLES)})")
        if role == "system" and index != 0:
            raise _BadRecord(f"{where}: a system message may only come first")
        calls = _parse_tool_calls(message, where, names) if role == "assistant" else []
        content = message.get("content")
        if not (calls and content is None):
            if not isinstance(content, str):
                raise _BadRecord(f"{where}: missing or non-string 'content'")
            if not content.strip():
                raise _BadRecord(f"{where}: empty {role} message")
        entry: Message = {"role": role, "content": content}
        if calls:
            entry["tool_calls"] = calls
            call_ids.update(str(call["id"]) for call in calls if "id" in call)
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id is not None and (not isinstance(call_id, str) or call_id not in call_ids):
                raise _BadRecord(f"{where}: tool_call_id {call_id!r} answers no earlier tool call")
            if call_id is not None:
                entry["tool_call_id"] = call_id
        if "weight" in message:
            if role != "assistant" or message["weight"] not in (0, 1):
                raise _BadRecord(f"{where}: 'weight' is 0 or 1, on assistant messages only")
            entry["weight"] = int(message["weight"])
        parsed.append(entry)
    if parsed[-1]["role"] != "assistant":
        raise _BadRecord("the last message must be the assistant's answer")
    if not any(m["role"] == "user" for m in parsed):
        raise _BadRecord("no user message")
    if all(m.get("weight") == 0 for m in parsed if m["role"] == "assistant"):
        raise _BadRecord("every assistant message has weight 0: nothing to train on")
    return tuple(parsed), tools


def parse_chat_record(record: dict[str, object]) -> _Parsed:
    """One chat record's messages and tools, checked as a chat file's line is; raises
    `BadLine` with the reason (the preference format checks its conversations with it)."""
    try:
        return _parse_chat(record)
    except _BadRecord as exc:
        raise BadLine(str(exc)) from None


def _parse_tools(tools: object) -> tuple[dict[str, object], ...]:
    if tools is None:
        return ()
    if not isinstance(tools, list):
        raise _BadRecord("'tools' must be a list of function tools")
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not (
            isinstance(tool, dict)
            and tool.get("type", "function") == "function"
            and isinstance(function, dict)
            and isinstance(function.get("name"), str)
            and function["name"]
        ):
            shape = '{"type": "function", "function": {"name": ..., "parameters": ...}}'
            raise _BadRecord(f"tools[{index}]: expected {shape}")
        if not isinstance(function.get("parameters", {}), dict):
            raise _BadRecord(f"tools[{index}].function.parameters must be a JSON schema object")
    return tuple(tools)


def _parse_tool_calls(message: dict[str, object], where: str, names: set[str]) -> list[Message]:
    calls = message.get("tool_calls")
    if calls is None:
        return []
    if not isinstance(calls, list) or not calls:
        raise _BadRecord(f"{where}: 'tool_calls' must be a non-empty list")
    parsed: list[Message] = []
    for index, call in enumerate(calls):
        at = f"{where}.tool_calls[{index}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _BadRecord(f'{at}: expected {{"function": {{"name": ..., "arguments": ...}}}}')
        name = function["name"]
        if name not in names:
            offered = ", ".join(sorted(names)) or "none (the record has no 'tools')"
            raise _BadRecord(f"{at}: calls {name!r}, not among the record's tools: {offered}")
        arguments = function.get("arguments")
        try:
            decoded = json.loads(arguments) if isinstance(arguments, str) else None
        except ValueError:
            decoded = None
        if not isinstance(decoded, dict):
            raise _BadRecord(f"{at}.function.arguments must be a string holding a JSON object")
        entry: Message = {"type": "function", "function": {"name": name, "arguments": arguments}}
        if isinstance(call.get("id"), str):
            entry["id"] = call["id"]
        parsed.append(entry)
    return parsed


def _parse_completion(record: dict[str, object]) -> _Parsed:
    prompt = _text_field(record, "prompt")
    completion = _text_field(record, "completion")
    return ({"role": "user", "content": prompt}, {"role": "assistant", "content": completion}), ()


def _parse_alpaca(record: dict[str, object]) -> _Parsed:
    instruction = _text_field(record, "instruction")
    extra = _text_field(record, "input", required=False).strip()
    output = _text_field(record, "output")
    prompt = f"{instruction}\n\n{extra}" if extra else instruction
    return ({"role": "user", "content": prompt}, {"role": "assistant", "content": output}), ()


_PARSERS: dict[str, Callable[[dict[str, object]], _Parsed]] = {
    "chat": _parse_chat,
    "completion": _parse_completion,
    "alpaca": _parse_alpaca,
}


# --- CSV -----------------------------------------------------------------------------------


def _read_csv(
    raw: bytes, prompt_column: str | None, completion_column: str | None
) -> tuple[list[Example], list[str]]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return [], [f"line {line}: not valid UTF-8"]
    sample = text[:4096]
    delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return [], ["line 1: empty CSV file (expected a header row)"]
    header = [name.strip() for name in header]
    prompt_col = _pick_column(header, prompt_column, CSV_PROMPT_COLUMNS)
    completion_col = _pick_column(header, completion_column, CSV_COMPLETION_COLUMNS)
    if prompt_col is None or completion_col is None:
        wanted = (
            f"prompt column {prompt_column or ' or '.join(CSV_PROMPT_COLUMNS)!r}"
            if prompt_col is None
            else f"completion column {completion_column or ' or '.join(CSV_COMPLETION_COLUMNS)!r}"
        )
        return [], [
            f"line 1: wrong CSV columns: no {wanted} in header {header} "
            "(use --prompt-column / --completion-column)"
        ]
    p_index, c_index = header.index(prompt_col), header.index(completion_col)
    examples: list[Example] = []
    problems: list[str] = []
    start_line = reader.line_num + 1
    try:
        for row in reader:
            number, start_line = start_line, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                problems.append(f"line {number}: {len(row)} cells, the header has {len(header)}")
                continue
            prompt, completion = row[p_index], row[c_index]
            if not prompt.strip():
                problems.append(f"line {number}: empty '{prompt_col}'")
            elif not completion.strip():
                problems.append(f"line {number}: empty '{completion_col}'")
            else:
                messages = (
                    {"role": "user", "content": prompt},
                    {"role": "assistant", "content": completion},
                )
                examples.append(Example(messages, line=number))
    except csv.Error as exc:
        problems.append(f"line {reader.line_num}: broken CSV ({exc})")
    return examples, problems


def _pick_column(header: list[str], wanted: str | None, defaults: tuple[str, ...]) -> str | None:
    if wanted is not None:
        return wanted if wanted in header else None
    lowered = {name.lower(): name for name in header}
    for name in defaults:
        if name in lowered:
            return lowered[name]
    return None
