"""Reading training examples from files and from NoMoat's own chats.

- JSONL (``.jsonl``, ``.ndjson``), one example a line: ``{"messages": [{"role", "content"},
  ...]}`` (OpenAI's fine-tuning format; ShareGPT's ``{"conversations": [{"from", "value"}]}``
  too), or a prompt and its answer: ``{"prompt", "response"}`` and the usual other names
  (``completion``, ``instruction``/``input``/``output`` as Alpaca has them, ``question``/
  ``answer``), with an optional ``system``.
- JSON (``.json``): a list of such objects, as Alpaca's own data set is shipped.
- CSV (``.csv``, ``.tsv``): two columns, the prompt and the answer; a header row is optional.
- Chats: conversations picked from the chat history, each one example.

Every row that cannot be used is listed with its line number and the reason; a file that
cannot be read at all (missing, empty, binary, not UTF-8, too large) raises :class:`DataError`.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from desktop.train.data import DataError, DataSet, Example, Problem, Turn, make_example

if TYPE_CHECKING:
    from desktop.core.chats import ChatStore

MAX_FILE_BYTES = 256 * 1024 * 1024
#: A row longer than this is surely not one example (and would not fit any context).
MAX_ROW_CHARS = 1_000_000
#: Problems kept per file; past this only their count is (a wrong file would list every line).
MAX_PROBLEMS = 1000

_ROLE_NAMES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant",
               "gpt": "assistant", "bot": "assistant", "model": "assistant"}
# (prompt key, answer key) pairs, tried in order.
_PAIR_KEYS = (("prompt", "response"), ("prompt", "completion"), ("instruction", "output"),
              ("instruction", "response"), ("question", "answer"), ("input", "output"),
              ("query", "response"), ("user", "assistant"))
_CSV_HEADERS = {"prompt", "response", "completion", "question", "answer", "input", "output",
                "instruction", "user", "assistant", "query", "reply"}


def load_data(path: str | os.PathLike[str], name: str | None = None) -> DataSet:
    """Read a JSONL, JSON or CSV file of examples; :class:`DataError` when it cannot be read."""
    path = Path(path).expanduser()
    text = read_text(path)
    kind = _kind_of(path, text)
    label = name or path.name
    if kind == "csv":
        examples, problems = read_csv(text, path.suffix.lower() == ".tsv")
    elif kind == "json":
        examples, problems = read_json_list(text)
    else:
        examples, problems = read_jsonl(text)
    if not examples and not problems:
        raise DataError(f"{path.name} holds no examples.")
    return DataSet(label, examples, _capped(problems), str(path), kind)


def read_text(path: Path) -> str:
    """The file's text; :class:`DataError` with the reason when it is not a readable text file."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise DataError(f"{path} is not a file.")
        if size > MAX_FILE_BYTES:
            raise DataError(f"{path.name} is {size / 1024**2:,.0f} MB; training data files "
                            f"are read whole, up to {MAX_FILE_BYTES // 1024**2} MB. Split it "
                            "or pick the examples that matter.")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"The data file {path} does not exist.") from None
    except OSError as exc:
        raise DataError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    if not raw.strip():
        raise DataError(f"{path.name} is empty.")
    if b"\x00" in raw[:65536]:
        raise DataError(f"{path.name} is not a text file (it holds binary data). Use a JSONL "
                        "or CSV file.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise DataError(f"{path.name} is not UTF-8 text (line {line} has bytes that are not "
                        "UTF-8). Save it as UTF-8 and try again.") from None


def _kind_of(path: Path, text: str) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    start = text.lstrip()[:1]
    if suffix == ".json":
        return "json" if start == "[" else "jsonl"
    if start == "[":
        return "json"
    if start == "{":
        return "jsonl"
    raise DataError(f"{path.name} is neither JSONL nor CSV. Use a .jsonl file with one "
                    "example a line, or a .csv file with two columns (prompt, answer).")


def _capped(problems: list[Problem]) -> list[Problem]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    more = len(problems) - MAX_PROBLEMS
    return problems[:MAX_PROBLEMS] + [Problem(0, f"and {more:,} more rows that cannot be used")]


# -- JSON --------------------------------------------------------------------------------------
def read_jsonl(text: str) -> tuple[list[Example], list[Problem]]:
    """Examples and problems from JSONL text, one object a line; blank lines are skipped."""
    examples: list[Example] = []
    problems: list[Problem] = []
    # Split on newlines only: JSON text may hold U+2028 and other characters that
    # str.splitlines() also breaks at, which would tear a row apart and shift line numbers.
    for number, row in enumerate(text.split("\n"), 1):
        row = row.removesuffix("\r")
        if not row.strip():
            continue
        if len(row) > MAX_ROW_CHARS:
            problems.append(Problem(number, f"the line is {len(row):,} characters long; one "
                                            f"example is at most {MAX_ROW_CHARS:,}"))
            continue
        try:
            record = json.loads(row)
        except ValueError as exc:
            problems.append(Problem(number, f"bad JSON: {_json_reason(exc)}"))
            continue
        except RecursionError:
            problems.append(Problem(number, "bad JSON: nested too deeply"))
            continue
        _add(examples, problems, record, number, "line")
    return examples, problems


def read_json_list(text: str) -> tuple[list[Example], list[Problem]]:
    """Examples and problems from a JSON list of objects; items are numbered from 1."""
    try:
        records = json.loads(text)
    except ValueError as exc:
        raise DataError(f"The file is not valid JSON: {_json_reason(exc)}. A .json file "
                        "holds one list of examples; for one example a line use .jsonl.") \
            from None
    except RecursionError:
        raise DataError("The file is not usable JSON: it is nested too deeply.") from None
    if not isinstance(records, list):
        raise DataError("The JSON file holds no list of examples: it should be [{...}, ...].")
    examples: list[Example] = []
    problems: list[Problem] = []
    for number, record in enumerate(records, 1):
        _add(examples, problems, record, number, "item")
    return examples, problems


def _json_reason(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at column {exc.colno}"
    return str(exc)


def _add(examples: list[Example], problems: list[Problem], record: Any, number: int,
         unit: str) -> None:
    made = example_from_record(record, number)
    if isinstance(made, Example):
        examples.append(made)
    else:
        problems.append(Problem(number, made, unit))


def example_from_record(record: Any, line: int) -> Example | str:
    """One JSON object as an :class:`Example`, or the reason it cannot be one."""
    if not isinstance(record, dict):
        return f"not a JSON object (found {_json_type(record)})"
    for key in ("messages", "conversations"):
        if key in record:
            return _from_messages(record[key], key, line)
    for prompt_key, answer_key in _PAIR_KEYS:
        if prompt_key in record and answer_key in record:
            return _from_pair(record, prompt_key, answer_key, line)
    keys = ", ".join(sorted(map(str, record))[:6]) or "none"
    return ("missing fields: expected 'messages', or 'prompt' and 'response' (or "
            f"'instruction' and 'output'); found {keys}")


def _from_messages(raw: Any, key: str, line: int) -> Example | str:
    if not isinstance(raw, list):
        return f"'{key}' is not a list of messages"
    turns = []
    for number, message in enumerate(raw, 1):
        if not isinstance(message, dict):
            return f"message {number} is not an object"
        role = message.get("role", message.get("from"))
        content = message.get("content", message.get("value"))
        if role is None:
            return f"message {number} has no 'role'"
        if content is None:
            return f"message {number} has no 'content'"
        if not isinstance(role, str):
            return f"message {number}'s role is not text"
        text = _content_text(content)
        if text is None:
            return (f"message {number}'s content is not text (only text can be learned "
                    "from)")
        turns.append(Turn(_ROLE_NAMES.get(role.strip().lower(), role), text))
    return make_example(turns, line)


def _content_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    # OpenAI's list of parts: text parts only.
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                         and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    return None


def _from_pair(record: dict[str, Any], prompt_key: str, answer_key: str,
               line: int) -> Example | str:
    fields = {prompt_key: record[prompt_key], answer_key: record[answer_key]}
    extra = record.get("input") if prompt_key == "instruction" else None
    system = record.get("system")
    for key, value in fields.items():
        if not isinstance(value, str):
            return f"'{key}' is not text (found {_json_type(value)})"
    for key, value in (("input", extra), ("system", system)):
        if value is not None and not isinstance(value, str):
            return f"'{key}' is not text (found {_json_type(value)})"
    prompt = fields[prompt_key]
    if extra and extra.strip():  # Alpaca: the instruction, then its input
        prompt = f"{prompt}\n\n{extra}"
    if not prompt.strip():
        return f"'{prompt_key}' is empty"
    if not fields[answer_key].strip():
        return f"'{answer_key}' is empty"
    turns = [Turn("user", prompt), Turn("assistant", fields[answer_key])]
    if system and system.strip():
        turns.insert(0, Turn("system", system))
    return make_example(turns, line)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "text", bool: "true/false",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


# -- CSV ---------------------------------------------------------------------------------------
def read_csv(text: str, tabs: bool = False) -> tuple[list[Example], list[Problem]]:
    """Examples and problems from CSV text of two columns (prompt, answer).

    The delimiter is a comma, a semicolon or a tab, whichever the first lines use; a first
    row whose cells are column names (prompt, response, question, ...) is a header.
    """
    delimiter = "\t" if tabs else _sniff_delimiter(text)
    csv.field_size_limit(MAX_ROW_CHARS)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    examples: list[Example] = []
    problems: list[Problem] = []
    line = 1
    first = True
    while True:
        start = line
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(Problem(start, f"the CSV cannot be read from here on ({exc}); "
                                           "check the quotes on this line"))
            break
        line = reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if first:
            first = False
            if all(cell.strip().lower() in _CSV_HEADERS for cell in row if cell.strip()):
                continue
        if len(row) != 2:
            problems.append(Problem(start, f"expected 2 columns (prompt, answer), found "
                                           f"{len(row)}"))
            continue
        prompt, answer = row
        if not prompt.strip():
            problems.append(Problem(start, "the prompt (first column) is empty"))
        elif not answer.strip():
            problems.append(Problem(start, "the answer (second column) is empty"))
        else:
            made = make_example([Turn("user", prompt), Turn("assistant", answer)], start)
            if isinstance(made, Example):
                examples.append(made)
            else:
                problems.append(Problem(start, made))
    return examples, problems


def _sniff_delimiter(text: str) -> str:
    sample = "\n".join(text.splitlines()[:20])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t").delimiter
    except csv.Error:
        return ","


# -- chats -------------------------------------------------------------------------------------
def from_chats(store: ChatStore, conversation_ids: Iterable[int],
               name: str | None = None) -> DataSet:
    """Conversations from the chat history as examples ("teach it to answer like this").

    A conversation's system prompt comes first; replies are taken as they were saved, up to
    the first that was not finished (stopped, failed), since a cut-off answer would teach the
    model to stop short. Thinking and tool calls are left out: only the answers are learned.
    """
    from desktop.core.chats import ConversationNotFound

    ids = list(conversation_ids)
    if not ids:
        raise DataError("No chats were chosen.")
    examples: list[Example] = []
    problems: list[Problem] = []
    for conversation_id in ids:
        try:
            conversation = store.conversation(conversation_id)
            messages = store.messages(conversation_id)
        except ConversationNotFound:
            problems.append(Problem(conversation_id, "this conversation no longer exists",
                                    "conversation"))
            continue
        turns = []
        if conversation.system_prompt.strip():
            turns.append(Turn("system", conversation.system_prompt))
        for message in messages:
            if message.role == "assistant" and message.state != "complete":
                break
            turns.append(Turn(message.role, message.content))
        while turns and turns[-1].role == "user":  # a question left without its answer
            turns.pop()
        made = make_example(turns, conversation_id)
        if isinstance(made, Example):
            examples.append(made)
        else:
            problems.append(Problem(conversation_id, f"'{conversation.title}': {made}",
                                    "conversation"))
    label = name or f"{len(ids)} chat{'s' * (len(ids) != 1)}"
    return DataSet(label, examples, problems, label, "chats")
