"""The `nomoat` command as a user types it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from desktop import __version__


def nomoat(*args: str, stdin: str | None = None, env: dict | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "desktop", *args], input=stdin,
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_version() -> None:
    result = nomoat("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"NoMoat {__version__}"


def test_models_lists_the_starter_and_files_in_the_data_dir(tmp_path: Path,
                                                           starter: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "My-Model.Q4_K_M.gguf").write_bytes(starter.read_bytes()[:1024])
    result = nomoat("--data-dir", str(tmp_path), "models", "--offline")
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert lines[0] == "Installed:"
    assert lines[1].startswith("smollm2-135m-instruct") and "(bundled)" in lines[1]
    mine = next(line for line in lines if line.startswith("my-model.q4_k_m"))
    assert "broken" in mine  # only the first 1,024 bytes of a model: refused, with the reason


def test_chat_in_the_terminal(tmp_path: Path) -> None:
    result = nomoat("--data-dir", str(tmp_path), "chat", "--ctx", "1024", "--max-tokens", "24",
                    stdin="Hello there\n/reset\nAnd again\n/exit\n")
    assert result.returncode == 0, result.stderr
    assert "Chatting with smollm2-135m-instruct" in result.stdout
    assert "(conversation cleared)" in result.stdout
    replies = [line for line in result.stdout.split("> ")[1:] if line.strip()]
    assert len(replies) >= 2  # an answer to each message
    assert (tmp_path / "logs" / "engine.log").exists()


def test_no_command_without_a_display_falls_back_to_the_terminal_chat(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = nomoat("--data-dir", str(tmp_path), stdin="/exit\n", env=env)
    assert result.returncode == 0, result.stderr
    assert "no display found" in result.stderr
    assert "Chatting with" in result.stdout


def test_serve_with_a_bad_model_exits_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_text("hello")
    result = nomoat("--data-dir", str(tmp_path), "serve", "--model", str(bad), "--port", "0")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("nomoat: bad.gguf is not a GGUF model file")


def test_unknown_model_id_exits_non_zero(tmp_path: Path) -> None:
    result = nomoat("--data-dir", str(tmp_path), "chat", "--model", "nope", stdin="")
    assert result.returncode == 1
    assert "No installed model is called 'nope'" in result.stderr


def test_data_dir_holds_everything(tmp_path: Path) -> None:
    home = tmp_path / "fakehome"
    home.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
    result = nomoat("--data-dir", str(tmp_path / "data"), "chat", stdin="/exit\n", env=env)
    assert result.returncode == 0, result.stderr
    assert list(home.iterdir()) == []  # nothing written under the user's home
    assert (tmp_path / "data" / "logs" / "engine.log").exists()


def test_serve_with_stacked_lora_adapters(tmp_path: Path) -> None:
    import httpx
    from conftest import start_serve, stop_serve
    from test_adapters import make_lora

    first = make_lora(tmp_path / "pirate.gguf", 1)
    second = make_lora(tmp_path / "sql.gguf", 2)
    served = start_serve("--lora", f"{first}:0.5", "--lora", str(second))
    try:
        listed = httpx.get(f"http://127.0.0.1:{served.port}/lora-adapters").json()
        scales = {Path(a["path"]).stem: a["scale"] for a in listed}
        assert scales == {"pirate": 0.5, "sql": 1.0}
        reply = served.client().chat.completions.create(
            model="smollm2-135m-instruct", max_tokens=4,
            messages=[{"role": "user", "content": "Hi"}])
        assert reply.usage.completion_tokens > 0
    finally:
        stop_serve(served)
    bad = nomoat("--data-dir", str(tmp_path), "serve", "--port", "0", "--lora",
                 str(tmp_path / "missing.gguf"))
    assert bad.returncode == 1 and bad.stderr.startswith("nomoat: ")


def test_serve_takes_an_adapter_of_the_library_by_name(data_home: Path, tmp_path: Path) -> None:
    # As `nomoat train` says at its end: `nomoat serve --lora NAME`.
    import httpx
    from conftest import start_serve, stop_serve
    from test_adapters import make_lora

    from desktop.core.adapters import AdapterLibrary

    AdapterLibrary().add_file(make_lora(tmp_path / "made.gguf", 1), name="pirate")
    served = start_serve("--lora", "pirate:0.5")
    try:
        listed = httpx.get(f"http://127.0.0.1:{served.port}/lora-adapters").json()
        assert [(a["name"], a["scale"]) for a in listed] == [("pirate", 0.5)]
    finally:
        stop_serve(served)
    bad = nomoat("serve", "--port", "0", "--lora", "parrot")
    assert bad.returncode == 1 and "parrot" in bad.stderr
