"""Local documents: how fast a folder is indexed, how fast the index answers, how well it finds.

1. Indexing: passages per second of the whole pipeline (Indexer.run over a folder of generated
   .txt/.md/.html files: scan, read, chunk, embed through the engine's /v1/embeddings, save)
   against llama-cpp-python embedding the same passage texts with the same model in this
   process (Llama(embedding=True), batches of the indexer's size, flash attention on as in the
   engine's context), interleaved round by round with two modes that split the difference:
   the engine's embeddings alone in the same batches, and the bare reference with
   llama-cpp-python's default context. Goal: pipeline >= 0.9x bare.
2. Search latency at 10k and 100k passages of generated text with random unit vectors, saved
   through DocStore.save_file: search() with a precomputed question vector (the index alone),
   the first search after opening the store, loading the vectors, the word ranking as search()
   makes it and as it made it before (every word of the question scored, each match looked up
   for its collection), and the vector ranking alone; then one real question embedded through
   the engine. Goal: < 50 ms.
3. Retrieval quality (MiniLM), recall@1, recall@5 and MRR of the hybrid search against reciprocal
   rank fusion without weights, BM25 alone and vectors alone, on two sets of questions (in
   tests/test_docs_questions.py): 30 questions over 30 short notes on everyday subjects, and
   39 questions over notes with near neighbours that differ in their details (invoices,
   payslips, error codes, versions, people), asked by exact identifier, in other words, or a
   mix. Each question is answered by exactly one note. Goal: hybrid recall@5 above both.

Run: .venv/bin/python benchmarks/localdocs.py [--rounds 3] [--passages 200] [--parts 123]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("NOMOAT_HOME", tempfile.mkdtemp(prefix="nomoat-bench-"))

import numpy as np  # noqa: E402

from desktop.client.docs import engine_embed  # noqa: E402
from desktop.client.process import EngineSupervisor  # noqa: E402
from desktop.core.cpu import default_threads  # noqa: E402
from desktop.core.docs.chunking import Chunk, chunk_document  # noqa: E402
from desktop.core.docs.indexer import Indexer  # noqa: E402
from desktop.core.docs.parsing import read_document  # noqa: E402
from desktop.core.docs.search import (  # noqa: E402
    CANDIDATES,
    fts_query,
    plan_words,
    reciprocal_rank_fusion,
    search,
    word_ranking,
)
from desktop.core.docs.store import DocStore  # noqa: E402
from desktop.core.docs.vectors import embed_texts, nearest  # noqa: E402
from desktop.core.library_changes import import_model  # noqa: E402
from desktop.engine import amx  # noqa: E402
from test_docs_questions import NEAR_NOTES, NOTES, near_questions  # noqa: E402

# The most frequent English words lead the word list, so generated text has English's mix of
# short common words and rarer long ones; the tokenizer's whole words follow.
COMMON = """the of and to a in is it you that he was for on are with as i his they be at one
have this from or had by not word but what some we can out other were all there when up use
your how said an each she which do their time if will way about many then them would like so
these her long make thing see him two has look more day could go come did number sound no most
people my over know water than call first who may down side been now find""".split()



class Words:
    """Generated text: words drawn by Zipf's law from COMMON and the tokenizer's vocabulary."""

    def __init__(self, seed: int) -> None:
        from embedding_model import model_folder  # type: ignore[import-not-found]

        tokenizer = json.loads((model_folder() / "tokenizer.json").read_text(encoding="utf-8"))
        self.rng = np.random.default_rng(seed)
        vocab = sorted(w for w in tokenizer["model"]["vocab"] if w.isascii() and w.isalpha()
                       and w.islower() and len(w) > 2 and w not in COMMON)
        self.rng.shuffle(vocab)
        self.words = np.array(COMMON + vocab)
        weights = 1.0 / (np.arange(len(self.words)) + 2.7)
        self.p = weights / weights.sum()

    def draw(self, n: int) -> list[str]:
        return list(self.words[self.rng.choice(len(self.words), size=n, p=self.p)])

    def sentence(self) -> str:
        return " ".join(self.draw(int(self.rng.integers(6, 19)))).capitalize() + "."

    def paragraph(self) -> str:
        return " ".join(self.sentence() for _ in range(int(self.rng.integers(3, 7))))


def write_folder(folder: Path, files: int, words: Words) -> None:
    """*files* documents of about four passages each, a third each .txt, .md and .html."""
    for n in range(files):
        parts = [(words.sentence()[:-1], [words.paragraph() for _ in range(4)]) for _ in "ab"]
        kind = ("txt", "md", "html")[n % 3]
        if kind == "txt":
            text = "\n\n".join(p for _, paras in parts for p in paras)
        elif kind == "md":
            text = "\n\n".join(f"## {head}\n\n" + "\n\n".join(paras) for head, paras in parts)
        else:
            text = "<html><body>" + "".join(f"<h2>{head}</h2>" + "".join(
                f"<p>{p}</p>" for p in paras) for head, paras in parts) + "</body></html>"
        (folder / f"doc{n:03d}.{kind}").write_text(text, encoding="utf-8")


def ms(values: list[float], q: float = 50) -> str:
    return f"{float(np.percentile(values, q)) * 1000:.1f}"


def clock(run, *args) -> float:  # type: ignore[no-untyped-def]
    """Seconds that run(*args) takes."""
    began = time.perf_counter()
    run(*args)
    return time.perf_counter() - began


def index_once(folder: Path, work: Path, embed, model: str):  # type: ignore[no-untyped-def]
    """Index *folder* into a new store: passages, seconds, seconds embedding, requests."""
    spent: list[float] = []

    def timed(texts: list[str]):  # type: ignore[no-untyped-def]
        began = time.perf_counter()
        vectors = embed(texts)
        spent.append(time.perf_counter() - began)
        return vectors

    database = work / f"index-{time.monotonic_ns()}.sqlite3"
    with DocStore(database) as store:
        collection = store.create_collection("bench")
        store.add_root(collection.id, folder)
        began = time.perf_counter()
        report = Indexer(store, timed, model).run(collection.id)
        seconds = time.perf_counter() - began
    database.unlink()
    return report.chunks, seconds, sum(spent), len(spent)


def indexing(args, client, model: str, bare, work: Path) -> None:  # type: ignore[no-untyped-def]
    folder = work / "docs"
    folder.mkdir()
    write_folder(folder, max(1, args.passages // 4), Words(1))
    texts = [chunk.embedding_text for path in sorted(folder.iterdir())
             for chunk in chunk_document(read_document(path))]
    size = inspect.signature(Indexer).parameters["batch_size"].default
    batches = [texts[start:start + size] for start in range(0, len(texts), size)]
    tokens = sum(len(bare["flash"].tokenize(t.encode())) for t in texts) / len(texts)
    print(f"\n1. Indexing {len(texts)} passages ({sum(map(len, texts)) / len(texts):.0f} "
          f"characters, {tokens:.0f} tokens each on average) in {args.passages // 4} files; "
          f"batches of {size}; passages/s")
    embed = engine_embed(client, model)
    shares, requests = [], 0

    def pipeline() -> float:
        nonlocal requests
        chunks, seconds, spent, requests = index_once(folder, work, embed, model)
        assert chunks == len(texts), (chunks, len(texts))
        shares.append(spent / seconds)
        return seconds

    modes = {"bare": lambda: [bare["flash"].embed(b, normalize=True) for b in batches],
             "bare, defaults": lambda: [bare["plain"].embed(b, normalize=True) for b in batches],
             "engine embeddings": lambda: [embed(b) for b in batches], "pipeline": pipeline}
    for llm in bare.values():
        llm.embed(batches[0])  # warm-up (the engine's model was warmed when it loaded)
    rates: dict[str, list[float]] = {mode: [] for mode in modes}
    for n in range(args.rounds):
        for mode in list(modes)[::1 if n % 2 == 0 else -1]:
            seconds = pipeline() if mode == "pipeline" else clock(modes[mode])
            rates[mode].append(len(texts) / seconds)
    print(f"{'round':>6} " + " ".join(f"{mode:>17}" for mode in modes) + "  embed share")
    for n in range(args.rounds):
        print(f"{n + 1:>6} " + " ".join(f"{rates[mode][n]:17.2f}" for mode in modes)
              + f"  {shares[n]:11.1%}")
    median = {mode: statistics.median(values) for mode, values in rates.items()}
    print(f"{'median':>6} " + " ".join(f"{median[m]:17.2f}" for m in modes)
          + f"  {statistics.median(shares):11.1%}")
    b = median["bare"]
    print(f"pipeline/bare {median['pipeline'] / b:.3f} (goal >= 0.9); engine embeddings/bare "
          f"{median['engine embeddings'] / b:.3f}; llama-cpp-python's defaults (no flash "
          f"attention)/bare {median['bare, defaults'] / b:.3f}; the pipeline made {requests} "
          f"embedding requests, the engine-embeddings mode {len(batches)}")


def build_store(path: Path, size: int, words: Words, per_file: int = 2000) -> tuple[int, float]:
    """A store of *size* passages of 150 words with random unit vectors, *per_file* a file."""
    began = time.perf_counter()
    with DocStore(path) as store:
        collection = store.create_collection("bench")
        for n in range(0, size, per_file):
            count = min(per_file, size - n)
            drawn = words.draw(count * 150)
            chunks = [Chunk(i, " ".join(drawn[i * 150:(i + 1) * 150]) + ".")
                      for i in range(count)]
            vectors = words.rng.standard_normal((count, 384)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            store.save_file(collection.id, f"/bench/file{n // per_file}.txt", size=0,
                            mtime_ns=0, hash=str(n), kind="text", chunks=chunks,
                            vectors=vectors, model_id="random-384")
    return collection.id, time.perf_counter() - began


# The word ranking as search() made it before: every word, each match looked up.
BEFORE = ("SELECT chunk_text.rowid FROM chunk_text JOIN chunks c ON c.id = chunk_text.rowid "
          "JOIN files f ON f.id = c.file_id WHERE chunk_text MATCH ? AND f.collection_id = ? "
          "ORDER BY bm25(chunk_text) LIMIT ?")


def latency(args, client, model: str, llm, work: Path) -> None:  # type: ignore[no-untyped-def]
    words = Words(2)
    questions = ["how do i " + " ".join(words.draw(int(words.rng.integers(3, 8))))
                 for _ in range(args.queries)]
    vectors = {q: words.rng.standard_normal(384).tolist() for q in questions}

    def fixed(texts: list[str]) -> list[list[float]]:
        return [vectors[texts[0]]]

    print(f"\n2. Search latency: top 8 for {args.queries} questions of 'how do i' and 3-7 "
          "words, precomputed question vectors; ms. 'words' is the word ranking as search() "
          "makes it, 'as before' the BM25 ranking of every word of the question with each "
          "match looked up for its collection, as search() made it before")
    print(f"{'passages':>9} {'build s':>7} {'MB':>5} {'first':>6} {'(load)':>6} {'median':>6} "
          f"{'p95':>6} {'max':>6} {'words':>6} {'p95':>6} {'as before':>9} {'p95':>6} "
          f"{'vectors':>7} {'p95':>6}")
    for size in args.sizes:
        path = work / f"search-{size}.sqlite3"
        collection_id, built = build_store(path, size, words)
        megabytes = sum(f.stat().st_size for f in work.glob(path.name + "*")) / 1e6
        with DocStore(path) as store:  # opened again: the first search reads the vectors
            first = clock(search, store, collection_id, questions[0], fixed)
        with DocStore(path) as store, closing(sqlite3.connect(path)) as db:
            load = clock(store.vectors, collection_id, "random-384")
            _, matrix = store.vectors(collection_id, "random-384")
            db.execute(BEFORE, ('"warm"', collection_id, CANDIDATES)).fetchall()
            totals, fts, every, vec, same = [], [], [], [], []
            for q in questions:
                totals.append(clock(search, store, collection_id, q, fixed))
                began = time.perf_counter()
                ranked = word_ranking(store, collection_id,
                                      plan_words(store, q, CANDIDATES, alone=False), CANDIDATES)
                fts.append(time.perf_counter() - began)
                began = time.perf_counter()
                full = [row[0] for row in db.execute(BEFORE, (fts_query(q) or "", collection_id,
                                                              CANDIDATES))]
                every.append(time.perf_counter() - began)
                vec.append(clock(nearest, matrix, embed_texts(fixed, [q])[0], CANDIDATES))
                same.append((ranked[:8] == full[:8], len(set(ranked) & set(full)),
                             len(full)))
            print(f"{size:>9} {built:7.1f} {megabytes:5.0f} {first * 1000:6.1f} "
                  f"{load * 1000:6.1f} {ms(totals):>6} {ms(totals, 95):>6} {ms(totals, 100):>6} "
                  f"{ms(fts):>6} {ms(fts, 95):>6} {ms(every):>9} {ms(every, 95):>6} "
                  f"{ms(vec):>7} {ms(vec, 95):>6}")
            print(f"  the word ranking against the one before: the same top 8 for "
                  f"{sum(top for top, _, _ in same)} of {len(same)} questions, "
                  f"{sum(n for _, n, _ in same)} of {sum(n for _, _, n in same)} passages "
                  f"of the top {CANDIDATES} in common")
            slow = sorted(zip(totals, questions))[-3:]
            plans = [plan_words(store, q, CANDIDATES, alone=False) for _, q in slow]
        with sqlite3.connect(path) as db:  # how many passages the slowest questions' words hit
            scored = [[db.execute("SELECT count(*) FROM chunk_text WHERE chunk_text MATCH ?",
                                  (m,)).fetchone()[0] for m in (plan.matches if plan else ())]
                      for plan in plans]
        # The first query's passages are scored; every word's too where it found too few.
        ran = [hit[:1] if hit and hit[0] >= CANDIDATES else hit for hit in scored]
        print("  slowest: " + "; ".join(
            f"{s * 1000:.0f} ms, {q[9:]!r}: {' then '.join(f'{n / size:.0%}' for n in hit)}"
            f" of the passages scored (every word: {all_words[-1] / size:.0%})"
            for (s, q), hit, all_words in zip(slow, ran, scored)))
        for f in work.glob(path.name + "*"):
            f.unlink()
    embed = engine_embed(client, model, query=True)
    asked = [question for _, question in list(NOTES.values())[:10]]
    engine = [clock(embed, [q]) for q in asked]
    local = [clock(llm.embed, [q]) for q in asked]
    empty = [clock(client.health) for _ in asked]
    print(f"one real question embedded (MiniLM, median of {len(asked)}): through the engine "
          f"{ms(engine)} ms, bare in this process {ms(local)} ms; an empty request to the "
          f"engine (GET /health) {ms(empty)} ms")


def quality(client, model: str, work: Path) -> None:  # type: ignore[no-untyped-def]
    first = {name: text for name, (text, _) in NOTES.items()}
    sets = {"first set": (first, [("first", name, q) for name, (_, q) in NOTES.items()]),
            "second set": (first | NEAR_NOTES, near_questions())}
    for label, (notes, questions) in sets.items():
        folder = work / label.replace(" ", "-")
        folder.mkdir()
        for name, text in notes.items():
            (folder / name).write_text(text + "\n", encoding="utf-8")
        passages, rankings = rank_notes(client, model, work, folder,
                                        [q for _, _, q in questions])
        print(f"\n3. Retrieval quality, {label}: {len(questions)} questions over "
              f"{len(notes)} notes ({passages} passages), MiniLM through the engine")
        kinds = sorted({kind for kind, _, _ in questions} - {"first"})
        print(f"{'ranking':>20} {'recall@1':>8} {'recall@5':>8} {'MRR':>6}"
              + "".join(f" {kind + ' @1, @5':>17}" for kind in kinds)
              + "  missed at 5 (its rank)")
        answers = [answer for _, answer, _ in questions]
        ranks: dict[str, list[int | None]] = {}
        for name, ranked in rankings.items():
            ranks[name] = found = [r.index(a) + 1 if a in r else None
                                   for r, a in zip(ranked, answers)]
            at1 = sum(1 for r in found if r == 1) / len(found)
            at5 = [r is not None and r <= 5 for r in found]
            mrr = sum(1 / r for r in found if r is not None) / len(found)
            by_kind = "".join(
                f" {sum(r == 1 for r, (k, _, _) in zip(found, questions) if k == kind):>6},"
                f" {sum(hit for hit, (k, _, _) in zip(at5, questions) if k == kind):>2} of "
                f"{sum(1 for k, _, _ in questions if k == kind):>2}" for kind in kinds)
            missed = [f"{a.rsplit('.', 1)[0]} ({r or '-'})"
                      for a, r, hit in zip(answers, found, at5) if not hit]
            print(f"{name:>20} {at1:8.2f} {sum(at5) / len(at5):8.2f} {mrr:6.3f}{by_kind}  "
                  f"{', '.join(missed) or '-'}")
        hybrid, _, words, vectors = ranks.values()
        worse = [f"{a.rsplit('.', 1)[0]} ({h}/{v}/{w or '-'})"
                 for a, h, w, v in zip(answers, hybrid, words, vectors)
                 if (h or 99) > min(w or 99, v or 99)]
        print("answer ranked lower by hybrid than by one alone (hybrid/vectors/BM25): "
              + (", ".join(worse) or "none"))


def rank_notes(client, model: str, work: Path, folder: Path,  # type: ignore[no-untyped-def]
               questions: list[str]) -> tuple[int, dict[str, list[list[str]]]]:
    """Index *folder* and rank its files for each question: the hybrid search(), reciprocal
    rank fusion without weights (as search() was before), BM25 alone, cosine alone; and how
    many passages the folder made."""
    with DocStore(work / f"{folder.name}.sqlite3") as store:
        collection = store.create_collection(folder.name)
        store.add_root(collection.id, folder)
        report = Indexer(store, engine_embed(client, model), model).run(collection.id)
        asked = embed_texts(engine_embed(client, model, query=True), questions)
        ids, matrix = store.vectors(collection.id, model)
        paths = {c: Path(s.path).name for c, s in store.chunks([int(i) for i in ids]).items()}
        cached = dict(zip(questions, asked))
        rankings: dict[str, list[list[str]]] = {
            "hybrid (search())": [], "unweighted fusion": [], "BM25 alone": [],
            "vectors alone": []}
        for row, q in enumerate(questions):
            hits = search(store, collection.id, q, lambda texts: [cached[texts[0]]],
                          top_k=CANDIDATES)
            rankings["hybrid (search())"].append([Path(h.path).name for h in hits])
            by_words = word_ranking(store, collection.id, plan_words(store, q), CANDIDATES)
            by_meaning = [int(ids[r]) for r, _ in nearest(matrix, asked[row], CANDIDATES)]
            fused = reciprocal_rank_fusion([by_words, by_meaning])
            rankings["unweighted fusion"].append([paths[c] for c, _ in fused])
            rankings["BM25 alone"].append([paths[c] for c in by_words])
            rankings["vectors alone"].append([paths[c] for c in by_meaning])
    return report.chunks, rankings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--passages", type=int, default=200)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--parts", default="123", help="which parts to run, e.g. 13")
    args = parser.parse_args()
    from embedding_model import build_minilm_gguf  # type: ignore[import-not-found]

    gguf = build_minilm_gguf(ROOT / ".pytest_cache" / "d" / "minilm-gguf")
    model = import_model(gguf, copy=False).id
    threads = default_threads()
    print(f"model {gguf.name}, {threads} threads, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.2f}, {args.rounds} rounds")
    amx.keep_out()  # as the engine loads models: the same kernels, and no AMX crash
    import llama_cpp

    # The engine's embedding context keeps llama.cpp's default flash attention ("auto": on,
    # on CPUs); llama-cpp-python's Llama turns it off unless asked. Both are measured.
    bare = {name: llama_cpp.Llama(str(gguf), embedding=True, n_ctx=512, n_batch=512,
                                  n_ubatch=512, n_threads=threads, n_threads_batch=threads,
                                  flash_attn=flash, verbose=False)
            for name, flash in (("flash", True), ("plain", False))}
    work = Path(tempfile.mkdtemp(prefix="nomoat-localdocs-"))
    supervisor = EngineSupervisor()
    supervisor.start()
    try:
        client = supervisor.client
        print(f"engine started; its first embedding (loading the model) took "
              f"{clock(client.embeddings, ['warm-up'], model):.2f} s")
        if "1" in args.parts:
            indexing(args, client, model, bare, work)
        if "2" in args.parts:
            latency(args, client, model, bare["flash"], work)
        if "3" in args.parts:
            quality(client, model, work)
    finally:
        supervisor.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"load at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
