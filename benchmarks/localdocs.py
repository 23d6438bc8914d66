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
   the first search after opening the store, loading the vectors, and the word and vector
   rankings alone; then one real question embedded through the engine. Goal: < 50 ms.
3. Retrieval quality: 30 questions over 30 short notes (each answer in exactly one), recall@1,
   recall@5 and MRR of the hybrid search against BM25 alone and vectors alone (MiniLM).

Run: .venv/bin/python benchmarks/localdocs.py [--rounds 3] [--passages 200] [--parts 123]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
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
from desktop.core.docs.search import CANDIDATES, fts_query, search  # noqa: E402
from desktop.core.docs.store import DocStore  # noqa: E402
from desktop.core.docs.vectors import embed_texts, nearest  # noqa: E402
from desktop.core.library_changes import import_model  # noqa: E402
from desktop.engine import amx  # noqa: E402

# The most frequent English words lead the word list, so generated text has English's mix of
# short common words and rarer long ones; the tokenizer's whole words follow.
COMMON = """the of and to a in is it you that he was for on are with as i his they be at one
have this from or had by not word but what some we can out other were all there when up use
your how said an each she which do their time if will way about many then them would like so
these her long make thing see him two has look more day could go come did number sound no most
people my over know water than call first who may down side been now find""".split()

# Short notes, each answering one question that no other note answers: "file | question",
# then the note (a markdown title on a line of its own).
NOTES_TEXT = """\
boiler.txt | The heating stopped and the gauge is low, how do I top it up?
Boiler notes. The Vaillant ecoTEC boiler in the utility room should show between 1.0 and 1.5 bar
when cold. If it falls below 0.8 bar, open the filling loop under it slowly until the gauge reads
1.2 bar, then close it. Harlow Heating services it every October.
washing_machine.md | Where is the washer's filter and how often should it be cleaned?
# Washing machine
The Bosch Serie 6 takes detergent in the left drawer. Clean the pump filter behind the flap at the
bottom right every three months; put a towel down, half a litre of water comes out. Wool and silk
go on the 30 degree hand-wash programme.
smoke_alarm.txt | When do the fire detectors need replacing?
Smoke alarms: one in the hallway, one on the landing. They have sealed ten-year lithium batteries
and were fitted in March 2021, so both are replaced in March 2031. Press the test button monthly; a
chirp every 40 seconds means the unit is failing.
cabin.md | What is the wifi password at the lake house?
# The cabin at Lake Vänern
The key box code is 4471; the box hangs left of the woodshed door. Wifi network Stuga-Guest,
password pinecone-88. The sauna heater takes 45 minutes to warm up; switch it off at the wall when
you leave.
ferry.txt | What time is the last boat back on a Saturday?
Ferry to the island: the first boat leaves Grebbestad harbour at 07:15 and the last returns at
21:40 on weekdays; at weekends the last return is 18:30. Bikes travel free; cars are booked a day
ahead on the operator's website.
camping.md | What should I bring for a night in a tent?
# Camping checklist
Tent, two sleeping mats, the down sleeping bags, the gas stove and a spare canister, a headtorch
each, water filter, first-aid kit. Pitch away from the river after heavy rain and pack out all
rubbish.
sourdough.md | How hot should the oven be for the bread?
# Sourdough loaf
Mix 500 g strong white flour, 350 g water, 100 g active starter and 10 g salt. Stretch and fold
four times over two hours, shape, prove in the fridge overnight. Bake in a Dutch oven at 250 °C for
20 minutes with the lid on, then 20 minutes at 230 °C without it.
lentil_soup.txt | How long can I keep the soup in the freezer?
Red lentil soup for four. Soften an onion, two carrots and garlic in olive oil, add cumin, 250 g
red lentils and 1.2 litres of stock. Simmer 25 minutes and blend; lemon at the end lifts it. It
freezes well for three months.
pancakes.txt | How many eggs go into the batter?
Saturday pancakes: 200 g plain flour, two eggs, 300 ml milk and a pinch of salt, whisked and rested
half an hour. Cook in a hot buttered pan, a minute a side. Toppings: lemon and sugar, or
blueberries and maple syrup.
expenses.md | How much can I spend on a hotel room in Paris?
# Travel expenses
Claims go through the Concur portal within 30 days, with a photo of every receipt. Hotels are
covered up to 180 euros a night in capital cities and 130 elsewhere. Trains are second class unless
the journey is over four hours. Meals: 45 euros a day.
leave.md | Can I move unused vacation days to next year?
# Annual leave
Full-time staff get 27 days of holiday a year plus public holidays. Up to five unused days carry
over into the next year and must be taken by the end of March. Requests over two weeks need a
month's notice.
remote.txt | How many days a week may I work remotely?
Working from home: the company pays up to 400 euros once for a chair, monitor or other equipment.
Laptops use the VPN for internal systems. Home office days are agreed with the team, at most three
a week.
tomatoes.md | When can the seedlings go outside?
# Tomatoes
Sow indoors in early March and plant out after the last frost, usually mid-May. Pinch out the side
shoots of cordon varieties weekly and feed with high-potash feed once the first flowers set. Water
at the base, never the leaves, to avoid blight.
lawn.txt | When should I reseed the bald spots in the grass?
The lawn: first cut in April with the blades high, then weekly at about 4 cm. Scarify and overseed
bare patches in September while the soil is warm and the rain returns. Do not mow in a drought;
brown grass recovers.
compost.txt | Can leftover chicken go on the heap?
Compost bins by the fence: mix green waste (grass clippings, peelings) with brown waste (cardboard,
dry leaves) half and half and turn the heap every few weeks. No meat, dairy or cooked food, which
bring rats. Ready in nine to twelve months.
cat.md | What is the vet's phone number?
# Miso the cat
Miso's vet is the Riverside Veterinary Clinic, phone 01632 960 441. Her booster vaccination is due
every October and flea treatment monthly. Her microchip number is on the card in the kitchen
drawer.
dog.txt | Which foods are toxic for the puppy?
Feeding Bramble: 250 g of dry food a day in two meals, treats at most a tenth of that. Grapes,
raisins, chocolate, onions and xylitol are poisonous to dogs. She pulls on the lead near other
dogs, so use the harness.
aquarium.txt | How do I clean the fish tank filter without killing the bacteria?
The aquarium holds 120 litres at 25 °C. Change a quarter of the water weekly with conditioned tap
water, and rinse the filter sponge in old tank water, never under the tap, so the good bacteria
survive.
car.md | What pressure should the tyres be when the car is full of luggage?
# The car
The Skoda Octavia is serviced every 15,000 km or yearly at Nordby Motors. Tyre pressure 2.3 bar
front and 2.1 rear, 2.5 bar all round when fully loaded. Winter tyres go on in November and off
after Easter.
bike.txt | My gears keep jumping, what do I adjust?
Bike care: clean and lube the chain every 300 km or after a wet ride. Brake pads are worn when the
grooves are gone. If the gears skip, turn the barrel adjuster on the rear derailleur a quarter turn
anticlockwise.
insurance.txt | What is the policy number for the car insurance?
Car insurance is with Lindqvist Mutual, policy number LM-2291-0457, renewing on 1 September: fully
comprehensive with a 500 euro excess and breakdown cover across Europe. Claims go to the 24-hour
line.
mortgage.md | How much extra can we pay off the home loan each year without a fee?
# Mortgage
The fixed rate of 3.1 percent ends in June 2027, then moves to the lender's variable rate.
Overpayments of up to 10 percent of the balance a year carry no penalty. The monthly payment is
1,240 euros.
electricity.txt | When is power cheapest?
Electricity tariff: time of use, 9 cents per kWh from 00:30 to 05:30 and 31 cents otherwise. Run
the dishwasher and the washing machine on their delay timers to use the night rate.
tax.md | When is the deadline for filing the tax return?
# Tax return
The self-assessment return is due online by 31 January, with any tax owed. Keep receipts for
charity donations and the home office allowance. The accountant, Priya Shah, needs the paperwork by
mid-December.
allergy.txt | Which antihistamine do I take for pollen, and how much?
Hay fever: one cetirizine tablet, 10 mg, each morning from April to July while the grass pollen
count is high. The nasal spray is for bad days. Keep windows closed in the early evening.
running.md | How often should I buy new trainers?
# Running plan
Three runs a week: an easy 5 km on Tuesday, six 800 m intervals on Thursday, a long slow run on
Sunday growing by 1 km a week to 18 km before the half marathon. Replace the shoes every 700 km.
dentist.txt | When is my next appointment to have my teeth looked at?
Dentist: Dr. Okafor at Meadow Dental, check-ups every six months, the next on 14 November at 9:20.
The hygienist is separate, 65 euros. The sensitive toothpaste helps the lower left molar.
router.md | What should I do when the internet connection goes down?
# Home network
The router's admin page is at 192.168.1.1, password on the sticker underneath. The mesh satellite
is on the landing. If the internet drops, restart the fibre box first, then the router, two minutes
apart.
photos.txt | Where is the offsite copy of our pictures kept?
Photo backup: the phones upload to the NAS in the study every night, and the NAS copies everything
to an encrypted cloud bucket on Sundays. A second copy lives on the blue USB drive at my parents'
house.
printer.txt | Which cartridge does the printer take?
The printer is a Brother HL-L2350DW laser on the home wifi. Replacement toner is TN-2420, about
3,000 pages. For jams, open the back cover and pull the paper straight out. Double-sided printing
is the default.
"""


def notes() -> dict[str, tuple[str, str]]:
    """File name -> (text, question), from NOTES_TEXT."""
    found: dict[str, tuple[str, str]] = {}
    for block in re.split(r"\n(?=\S+ \| )", NOTES_TEXT.strip()):
        head, *lines = block.splitlines()
        name, question = head.split(" | ")
        title = lines.pop(0) + "\n" if lines[0].startswith("# ") else ""
        found[name] = (title + " ".join(lines), question)
    return found


NOTES = notes()


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


def latency(args, client, model: str, llm, work: Path) -> None:  # type: ignore[no-untyped-def]
    words = Words(2)
    questions = ["how do i " + " ".join(words.draw(int(words.rng.integers(3, 8))))
                 for _ in range(args.queries)]
    vectors = {q: words.rng.standard_normal(384).tolist() for q in questions}

    def fixed(texts: list[str]) -> list[list[float]]:
        return [vectors[texts[0]]]

    print(f"\n2. Search latency: top 8 for {args.queries} questions of 'how do i' and 3-7 "
          "words, precomputed question vectors; ms")
    print(f"{'passages':>9} {'build s':>7} {'MB':>5} {'first':>6} {'(load)':>6} {'median':>6} "
          f"{'p95':>6} {'max':>6} {'words':>6} {'p95':>6} {'vectors':>7}")
    for size in args.sizes:
        path = work / f"search-{size}.sqlite3"
        collection_id, built = build_store(path, size, words)
        megabytes = sum(f.stat().st_size for f in work.glob(path.name + "*")) / 1e6
        with DocStore(path) as store:  # opened again: the first search reads the vectors
            first = clock(search, store, collection_id, questions[0], fixed)
        with DocStore(path) as store:
            load = clock(store.vectors, collection_id, "random-384")
            _, matrix = store.vectors(collection_id, "random-384")
            totals, fts, vec = [], [], []
            for q in questions:
                totals.append(clock(search, store, collection_id, q, fixed))
                fts.append(clock(store.full_text_ranking, collection_id, fts_query(q) or "",
                                 CANDIDATES))
                vec.append(clock(nearest, matrix, embed_texts(fixed, [q])[0], CANDIDATES))
        print(f"{size:>9} {built:7.1f} {megabytes:5.0f} {first * 1000:6.1f} {load * 1000:6.1f} "
              f"{ms(totals):>6} {ms(totals, 95):>6} {ms(totals, 100):>6} {ms(fts):>6} "
              f"{ms(fts, 95):>6} {ms(vec):>7}")
        with sqlite3.connect(path) as db:  # how many passages the slowest questions' words hit
            slow = sorted(zip(totals, questions))[-3:]
            matched = [db.execute("SELECT count(*) FROM chunk_text WHERE chunk_text MATCH ?",
                                  (fts_query(q),)).fetchone()[0] for _, q in slow]
        print("  slowest: " + "; ".join(f"{s * 1000:.0f} ms, {q[9:]!r} matching {n / size:.0%}"
                                        for (s, q), n in zip(slow, matched)))
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
    folder = work / "notes"
    folder.mkdir()
    for name, (text, _) in NOTES.items():
        (folder / name).write_text(text + "\n", encoding="utf-8")
    with DocStore(work / "notes.sqlite3") as store:
        collection = store.create_collection("notes")
        store.add_root(collection.id, folder)
        report = Indexer(store, engine_embed(client, model), model).run(collection.id)
        questions = [question for _, question in NOTES.values()]
        asked = embed_texts(engine_embed(client, model, query=True), questions)
        ids, matrix = store.vectors(collection.id, model)
        paths = {c: Path(s.path).name for c, s in store.chunks([int(i) for i in ids]).items()}
        cached = dict(zip(questions, asked))
        rankings: dict[str, list[list[str]]] = {"hybrid": [], "BM25 alone": [],
                                                "vectors alone": []}
        for row, q in enumerate(questions):
            hits = search(store, collection.id, q, lambda texts: [cached[texts[0]]],
                          top_k=CANDIDATES)
            rankings["hybrid"].append([Path(h.path).name for h in hits])
            by_words = store.full_text_ranking(collection.id, fts_query(q) or "", CANDIDATES)
            rankings["BM25 alone"].append([paths[c] for c in by_words])
            rankings["vectors alone"].append(
                [paths[int(ids[r])] for r, _ in nearest(matrix, asked[row], CANDIDATES)])
    print(f"\n3. Retrieval quality: {len(NOTES)} questions over {len(NOTES)} notes "
          f"({report.chunks} passages), MiniLM through the engine")
    print(f"{'ranking':>14} {'recall@1':>8} {'recall@5':>8} {'MRR':>6}  missed at 5")
    answers = list(NOTES)
    ranks: dict[str, list[int | None]] = {}
    for label, ranked in rankings.items():
        ranks[label] = found = [r.index(a) + 1 if a in r else None
                                for r, a in zip(ranked, answers)]
        at1 = sum(1 for r in found if r == 1) / len(found)
        at5 = sum(1 for r in found if r is not None and r <= 5) / len(found)
        mrr = sum(1 / r for r in found if r is not None) / len(found)
        missed = [a.split(".")[0] for a, r in zip(answers, found) if r is None or r > 5]
        print(f"{label:>14} {at1:8.2f} {at5:8.2f} {mrr:6.3f}  {', '.join(missed) or '-'}")
    hybrid, words, vectors = ranks.values()
    worse = [f"{a.split('.')[0]} ({h}/{v}/{w or '-'})"
             for a, h, w, v in zip(answers, hybrid, words, vectors)
             if (h or 99) > min(w or 99, v or 99)]
    print("answer ranked lower by hybrid than by one alone (hybrid/vectors/BM25): "
          + (", ".join(worse) or "none"))


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
