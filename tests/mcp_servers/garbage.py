"""A stdio "MCP server" that answers the client's JSON-RPC with malformed or hostile replies.

    python tests/mcp_servers/garbage.py STEP MODE SEED

It answers well until the request named by STEP (initialize, tools/list or tools/call), answers
that one in the way MODE names, with the details drawn from SEED, and answers well after it
unless the mode ended its output. Only the standard library, so that it starts fast.
"""

from __future__ import annotations

import json
import os
import random
import sys
from typing import Any

STEPS = ("initialize", "tools/list", "tools/call")
MODES = ("not_json", "wrong_id", "wrong_types", "missing_fields", "huge", "odd_unicode",
         "raw_bytes", "close_mid", "error_code", "exit", "silent", "flood", "request_back",
         "deep", "twice", "no_newline")
ODD = ["", "\u202eevil", "\x00\x01\x1b[31mred", "💥" * 40, "\ud800", "line\nbreak\r\n",
       "\u200b\u2066", "Ω≈ç√∫", "null", "a" * 5000, "😀" * 3 + "\uffff"]

rng = random.Random(int(sys.argv[3]))
out = sys.stdout.buffer


def write(data: bytes) -> None:
    out.write(data)
    out.flush()


def encode(message: Any) -> bytes:
    text = json.dumps(message, ensure_ascii=rng.random() < 0.5)
    return (text + "\n").encode("utf-8", "surrogatepass")  # lone surrogates go out as they are


def good(method: str, params: dict[str, Any]) -> dict[str, Any]:
    if method == "initialize":
        return {"protocolVersion": params.get("protocolVersion", "2025-06-18"),
                "capabilities": {"tools": {}}, "serverInfo": {"name": "garbage", "version": "1"}}
    if method == "tools/list":
        return {"tools": [{"name": "echo", "description": "Echoes its text.", "inputSchema": {
            "type": "object", "properties": {"text": {"type": "string"}}}}]}
    if method == "tools/call":
        text = str((params.get("arguments") or {}).get("text", ""))
        return {"content": [{"type": "text", "text": f"echo: {text}"}], "isError": False}
    return {}


def spoiled(method: str, result: dict[str, Any]) -> Any:
    """*result* with one part of the wrong type."""
    choice = rng.randrange(4)
    if choice == 0:
        return rng.choice(["text", [], 42, None, True])
    if method == "initialize":
        key = rng.choice(["protocolVersion", "capabilities", "serverInfo"])
        return {**result, key: rng.choice([7, "x", None, [1], {"a": 1}])}
    if method == "tools/list":
        return {"tools": rng.choice(["abc", [1, 2], [{"name": 5}], [{"name": "x",
                                     "inputSchema": "none"}], [{"description": "no name"}]])}
    return {**result, rng.choice(["content", "isError"]): rng.choice(
        [5, "yes", [{"type": "text"}], [{"type": "image"}], [{"type": "odd", "x": 1}]])}


def oddified(value: Any) -> Any:
    if isinstance(value, str):
        return rng.choice(ODD) if rng.random() < 0.5 else value + rng.choice(ODD)
    if isinstance(value, dict):
        return {k: (oddified(v) if k not in ("protocolVersion", "type") else v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [oddified(v) for v in value]
    return value


def hugified(value: Any, size: int) -> Any:
    if isinstance(value, str) and value not in ("object", "string", "text"):
        return value + "x" * size
    if isinstance(value, dict):
        return {k: (hugified(v, size) if k != "protocolVersion" else v) for k, v in value.items()}
    if isinstance(value, list):
        return [hugified(v, size) for v in value]
    return value


def hostile(mode: str, ident: Any, method: str, result: dict[str, Any]) -> None:
    reply = {"jsonrpc": "2.0", "id": ident, "result": result}
    if mode == "not_json":
        junk = [b"hello\n", b"{\n", b"{'jsonrpc': '2.0'}\n", b"[1,2,\n", b"\n", b"null\n",
                b'{"jsonrpc":"2.0"}\n', bytes(rng.randrange(256) for _ in range(64)) + b"\n"]
        for _ in range(rng.randint(1, 4)):
            write(rng.choice(junk))
        if rng.random() < 0.5:
            write(encode(reply))
    elif mode == "wrong_id":
        write(encode({**reply, "id": rng.choice([ident + 1, f"{ident}x", None, -1, 1.5, [ident],
                                                 {"id": ident}, str(ident)])}))
    elif mode == "wrong_types":
        write(encode({**reply, "result": spoiled(method, result)}))
    elif mode == "missing_fields":
        write(encode(rng.choice([{"jsonrpc": "2.0", "id": ident}, {**reply, "result": {}},
                                 {"id": ident, "result": result}, {"jsonrpc": "2.0"}])))
    elif mode == "huge":
        size = rng.randint(100_000, 2_000_000)
        if rng.random() < 0.3:
            write(b"z" * size + b"\n")
        write(encode({**reply, "result": hugified(result, size)}))
    elif mode == "odd_unicode":
        write(encode({**reply, "result": oddified(result)}))
    elif mode == "raw_bytes":
        text = json.dumps(reply).encode()
        cut = text.rfind(b'"') if b'"' in text else len(text)
        write(text[:cut] + bytes([0xFF, 0xFE, 0xC0, rng.randrange(128, 256)]) + text[cut:] + b"\n")
    elif mode == "close_mid":
        data = encode(reply)
        write(data[: rng.randrange(1, len(data))])
        os.close(1)
        for _ in sys.stdin.buffer:  # keep reading until the client lets go
            pass
        sys.exit(0)
    elif mode == "error_code":
        code = rng.choice([0, -1, 2**53, -32000, 32600, "x", 1.5, None, True])
        message = rng.choice([*ODD, None, 5])
        write(encode({"jsonrpc": "2.0", "id": ident, "error": {"code": code, "message": message}}))
    elif mode == "exit":
        code = rng.choice([0, 1, 2, 70])
        print(f"garbage server exits with status {code}", file=sys.stderr, flush=True)
        os._exit(code)
    elif mode == "silent":
        pass
    elif mode == "flood":
        for n in range(rng.randint(50, 300)):
            write(encode(rng.choice([
                {"jsonrpc": "2.0", "method": "notifications/message",
                 "params": {"level": "info", "data": rng.choice(ODD)}},
                {"jsonrpc": "2.0", "method": "notifications/progress",
                 "params": {"progressToken": n, "progress": n}},
                {"jsonrpc": "2.0", "method": "no/such/thing", "params": {"x": n}}])))
        write(encode(reply))
    elif mode == "request_back":
        write(encode({"jsonrpc": "2.0", "id": "s1", "method": rng.choice(
            ["sampling/createMessage", "roots/list", "elicitation/create", "ping", "odd/thing"]),
            "params": rng.choice([{}, {"x": rng.choice(ODD)}, None])}))
        write(encode(reply))
    elif mode == "deep":
        depth = rng.randint(2_000, 200_000)
        write(b'{"jsonrpc":"2.0","id":' + json.dumps(ident).encode() + b',"result":'
              + b"[" * depth + b"]" * depth + b"}\n")
    elif mode == "twice":
        write(encode(reply))
        write(encode(reply))
    elif mode == "no_newline":
        write(encode(reply).rstrip(b"\n"))


def main() -> None:
    step, mode = sys.argv[1], sys.argv[2]
    assert step in STEPS and mode in MODES, (step, mode)
    done = False
    for line in sys.stdin.buffer:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if not isinstance(message, dict) or "id" not in message or "method" not in message:
            continue  # a notification, or the client's answer to a request of ours
        method, params = message["method"], message.get("params") or {}
        result = good(method, params)
        if method == step and not done:
            done = True
            hostile(mode, message["id"], method, result)
        else:
            write(encode({"jsonrpc": "2.0", "id": message["id"], "result": result}))


if __name__ == "__main__":
    main()
