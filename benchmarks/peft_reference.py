"""One-off check of NoMoat's PEFT -> GGUF LoRA conversion against transformers + peft.

Not part of the test suite: it needs torch, transformers and peft, which the app never uses.
It runs in two interpreters:

1. NoMoat's (this one) tokenizes a few texts with llama.cpp and starts the reference part
   with ``--reference-python``.
2. The reference part loads the starter model into transformers from the same GGUF file
   (transformers de-quantizes it and undoes llama.cpp's q/k permutation), wraps it with a
   seeded PEFT LoRA on every attention and MLP projection, saves that adapter the way PEFT
   does (adapter_config.json + adapter_model.safetensors), and records the top-1 token at
   every position, with and without the adapter.
3. Back here, desktop.core.peft converts the saved adapter to GGUF, llama.cpp computes the
   top-1 token at every position with it (and without it), and the script prints how often
   the two agree. As a control it also converts without the q/k permutation, which must
   agree visibly less.

Run (see docs/lora.md for how the reference environment was made):
    .venv/bin/python benchmarks/peft_reference.py --reference-python /tmp/peftref/bin/python
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TEXTS = [
    ("The lighthouse keeper climbed the spiral stairs every evening at dusk. He trimmed the "
     "wick, polished the great lens and wrote the weather in a leather book: wind from the "
     "west, rain after midnight, a fishing boat seen rounding the point before the storm. In "
     "winter the gulls came close to the glass, and he fed them the crusts of his bread."),
    ("To make a simple loaf, mix five hundred grams of flour with ten grams of salt, seven "
     "grams of dried yeast and three hundred and fifty millilitres of warm water. Knead the "
     "dough for ten minutes until it is smooth, leave it to rise for an hour, shape it, let "
     "it rise again and bake it at two hundred and twenty degrees for thirty minutes."),
    ("def fibonacci(n):\n    \"\"\"Return the first n Fibonacci numbers.\"\"\"\n    numbers = "
     "[0, 1]\n    while len(numbers) < n:\n        numbers.append(numbers[-1] + numbers[-2])\n"
     "    return numbers[:n]\n\n\nfor count in range(1, 10):\n    print(count, fibonacci("
     "count))\n"),
    ("Photosynthesis is the process by which green plants use sunlight, water and carbon "
     "dioxide to make glucose and oxygen. It happens mainly in the leaves, inside chloroplasts "
     "that contain chlorophyll, the pigment that absorbs red and blue light and reflects "
     "green. The oxygen we breathe is a by-product of this reaction."),
]


# -- the reference part (torch) ------------------------------------------------------------------
def reference(work: Path, model_path: Path, seed: int, rank: int, alpha: float,
              sigma: float) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_path.parent, gguf_file=model_path.name,
                                                 dtype=torch.float32)
    model.eval()
    sequences = json.loads((work / "tokens.json").read_text())

    def top1(net) -> list[list[int]]:  # type: ignore[no-untyped-def]
        with torch.no_grad():
            return [net(torch.tensor([ids])).logits[0].argmax(-1).tolist() for ids in sequences]

    base = top1(model)
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=TARGETS, lora_dropout=0.0,
                        init_lora_weights=False)
    adapted = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # a trained adapter's B is far from PEFT's zero start
        for name, param in adapted.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * sigma)
    adapted.eval()
    lora = top1(adapted)
    adapted.save_pretrained(str(work / "adapter"))
    (work / "reference.json").write_text(json.dumps({"base": base, "lora": lora}))


# -- NoMoat's part (llama.cpp) ---------------------------------------------------------------------
def llama_top1(model_path: Path, sequences: list[list[int]], lora: Path | None) -> list[list[int]]:
    import llama_cpp
    from desktop.engine import amx
    amx.keep_out()  # the engine's loading (see desktop/engine/amx.py)
    import numpy as np

    llm = llama_cpp.Llama(str(model_path), n_ctx=512, n_batch=512, logits_all=True, n_threads=1,
                          lora_path=str(lora) if lora else None, verbose=False)
    try:
        result = []
        for ids in sequences:
            llm.reset()
            llm.eval(ids)
            result.append(np.argmax(llm.scores[: len(ids)], axis=1).tolist())
        return result
    finally:
        llm.close()


def agreement(a: list[list[int]], b: list[list[int]]) -> tuple[int, int]:
    same = sum(x == y for seq_a, seq_b in zip(a, b) for x, y in zip(seq_a, seq_b))
    return same, sum(len(seq) for seq in a)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference-python", help="python with torch, transformers and peft")
    parser.add_argument("--reference-part", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--model", help="GGUF model (default: the starter model)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=16.0)
    parser.add_argument("--sigma", type=float, default=0.02, help="spread of lora_B")
    parser.add_argument("--keep", metavar="DIR", help="keep the adapter and results in DIR")
    args = parser.parse_args()

    if args.reference_part:
        reference(Path(args.reference_part), Path(args.model), args.seed, args.rank, args.alpha,
                  args.sigma)
        return 0
    if not args.reference_python:
        parser.error("--reference-python is required")

    sys.path.insert(0, str(ROOT))
    import llama_cpp
    from desktop.engine import amx
    amx.keep_out()  # the engine's loading (see desktop/engine/amx.py)

    from desktop.core import peft
    from desktop.core.gguf_info import read_gguf
    from desktop.core.library import starter_model_path

    model_path = Path(args.model) if args.model else starter_model_path()
    assert model_path is not None, "the starter model is not installed"
    vocab_only = llama_cpp.Llama(str(model_path), vocab_only=True, verbose=False)
    sequences = [vocab_only.tokenize(text.encode(), add_bos=True) for text in TEXTS]
    vocab_only.close()

    with tempfile.TemporaryDirectory(prefix="nomoat-peft-ref-") as scratch:
        work = Path(args.keep) if args.keep else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        (work / "tokens.json").write_text(json.dumps(sequences))
        subprocess.run([args.reference_python, __file__, "--reference-part", str(work),
                        "--model", str(model_path), "--seed", str(args.seed),
                        "--rank", str(args.rank), "--alpha", str(args.alpha),
                        "--sigma", str(args.sigma)], check=True)
        ref = json.loads((work / "reference.json").read_text())
        base_info = read_gguf(model_path)
        converted = peft.convert_peft(work / "adapter", base_info, work / "converted.gguf")
        peft.PERMUTES_QK["llama"] = False
        unpermuted = peft.convert_peft(work / "adapter", base_info, work / "unpermuted.gguf")
        peft.PERMUTES_QK["llama"] = True

        ours_base = llama_top1(model_path, sequences, None)
        ours_lora = llama_top1(model_path, sequences, converted)
        ours_wrong = llama_top1(model_path, sequences, unpermuted)

    rows = [
        ("base model: llama.cpp vs transformers", agreement(ours_base, ref["base"])),
        ("with the adapter: llama.cpp vs transformers+peft", agreement(ours_lora, ref["lora"])),
        ("control, q/k not permuted: llama.cpp vs transformers+peft",
         agreement(ours_wrong, ref["lora"])),
        ("the adapter's effect: transformers base vs transformers+peft",
         agreement(ref["base"], ref["lora"])),
    ]
    print(f"model {model_path.name}, {len(sequences)} texts, {rows[0][1][1]} positions, "
          f"LoRA rank {args.rank}, alpha {args.alpha:g}, B sigma {args.sigma:g}, "
          f"targets {', '.join(TARGETS)}")
    for label, (same, total) in rows:
        print(f"  {label:<62} top-1 agree {same}/{total} = {same / total:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
