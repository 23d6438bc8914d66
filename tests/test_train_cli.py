"""`nomoat train` end to end: progress lines, Ctrl-C stops after the step in progress with a
checkpoint and says how to go on, --resume finishes, and the adapter lands in the library."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from desktop.train import missing_extra

pytestmark = pytest.mark.skipif(missing_extra() is not None,
                                reason="the train extra is not installed (make setup-test does)")

DATA = Path(__file__).parent / "data" / "train" / "zorblax.jsonl"
NAME = "capital facts"


def nomoat(*args: str) -> list[str]:
    return [sys.executable, "-m", "desktop", *args]


def test_train_stops_on_ctrl_c_and_resumes(tmp_path: Path) -> None:
    env = dict(os.environ, NOMOAT_HOME=str(tmp_path / "home"))
    command = nomoat("train", "--base", "smollm2-135m-instruct", "--data", str(DATA),
                     "--out", NAME, "--steps", "6", "--threads", "2", "--lr", "2e-3",
                     "--checkpoint-every", "2")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.extend(proc.stderr or []), daemon=True)
    reader.start()
    seen: list[str] = []
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("checkpoint saved at step 2"):
                proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground program
        code = proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(10)
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
    out = "".join(seen)
    assert code == 130, (out, errors)
    assert out.startswith("zorblax.jsonl: 32 examples\nAbout ")
    assert "Training: 6 steps, 29 examples, 3 held out, 2 threads." in out
    assert "step 1/6  epoch 0.12  loss " in out and " s/step " in out
    assert "Stopping after this step" in "".join(errors)
    stopped = [line for line in seen if line.startswith("Stopped at step ")]
    assert stopped, out
    step = int(stopped[0].split()[3].rstrip(";"))
    assert 2 <= step < 6
    assert f"nomoat train --out '{NAME}' --resume" in out

    again = subprocess.run(nomoat("train", "--out", NAME), capture_output=True, text=True,
                           env=env, timeout=60, check=False)
    assert again.returncode == 1 and "was stopped at step" in again.stderr

    done = subprocess.run(nomoat("train", "--out", NAME, "--resume"), capture_output=True,
                          text=True, env=env, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Resuming '{NAME}' from step {step}.")
    assert f"Training from step {step}: 6 steps" in done.stdout
    assert f"step {step + 1}/6" in done.stdout and "step 6/6" in done.stdout
    assert f"Trained '{NAME}' in " in done.stdout
    assert done.stdout.strip().endswith(f"nomoat serve --lora '{NAME}'")
    assert [p.suffix for p in (tmp_path / "home" / "adapters").iterdir()
            if p.is_file() and p.suffix == ".gguf"] == [".gguf"]

    listed = subprocess.run(nomoat("train", "--out", NAME, "--resume"), capture_output=True,
                            text=True, env=env, timeout=60, check=False)
    assert listed.returncode == 1 and "finished training" in listed.stderr
