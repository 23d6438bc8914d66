"""llama.cpp ends the process when its grammar is handed a token it does not allow. No token
may reach it unchecked: not one the engine writes for the model (the end of the thinking),
not the text that completes a trigger, not any token at all. Run in a process of its own, so
that a regression fails this test instead of ending the whole run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = r'''
import random, sys
import llama_cpp
from desktop.engine.grammar import AFTER_THINKING, GrammarRefused, GrammarSampler, schema_grammar
from desktop.engine.vocab import tokens_of

weights = llama_cpp.Llama(sys.argv[1], vocab_only=True, verbose=False)
vocab = llama_cpp.llama_model_get_vocab(weights.model)
schema = schema_grammar({"type": "object", "properties": {"city": {"type": "string"}},
                         "required": ["city"]})
rng = random.Random(7)
refused = taken = 0
# Random tokens, and the pieces of real answers, against a grammar that is bound from the
# start, one that waits for the end of the thinking, and one that waits for a call's marker.
texts = ["\n</think>\n\n{\"city\": \"Oslo\"}\n\nmore", "<think>hm</think>  {\"city\"",
         "Sure. <tool_call>\n{\"name\": \"f\"", "{\"city\": \"Rome\"} and then some"]
for round in range(120):
    kind = round % 3
    trigger = None if kind == 0 else AFTER_THINKING if kind == 1 else (
        r"[\s\S]*?(<tool_call>[\s\S]*)")
    grammar = GrammarSampler(vocab, schema, trigger)
    tokens = (tokens_of(vocab, rng.choice(texts)) if round % 2 else
              [rng.randrange(llama_cpp.llama_vocab_n_tokens(vocab)) for _ in range(12)])
    for token in tokens:
        try:
            grammar.accept(token)
            taken += 1
        except GrammarRefused:
            refused += 1
            break
    grammar.close()
print("taken", taken, "refused", refused)
assert taken > 50 and refused > 20, (taken, refused)
'''


def test_no_token_reaches_the_grammar_unchecked(starter: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(starter)], cwd=root,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "taken" in done.stdout
