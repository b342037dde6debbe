"""Knowledge-base benchmark: ingest a real corpus, re-ingest it unchanged, search at its size
and at 100k chunks, on the embedded store (qdrant-edge) and qdrant-client's local mode.

Usage:
    python bench/ingest.py [FOLDER] [--limit N] [--pad-to 100000] [--local-cap 20000]
                           [--queries 200] [--threads N] [--optimize]

FOLDER defaults to Debian's python3.11-doc HTML (`apt-get install -y python3.11-doc`);
`*.html` files are ingested, the generated index pages left out. `--limit` takes the first
N files. Search latency is per call of `KnowledgeBase.search` (query embedding included),
hybrid (dense + BM25, relative score fusion), always filtered to one tenant. The 100k
point is reached by padding the store with synthetic chunks of ten other tenants.
qdrant-client's local mode is brute force in pure Python, so its size is capped at
`--local-cap` points.
Goals: unchanged re-ingest >= 20x faster than the first; hybrid p50 < 20 ms at 100k.
"""

from __future__ import annotations

import argparse
import itertools
import random
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest.knowledge import KnowledgeBase, open_knowledge_base
from ingest.models import IngestReport
from ingest.store import Store
from ingest.store.points import ChunkPoint, SparseVec
from ingest.store.server import QdrantStore
from lorag.settings import Settings

DEFAULT_CORPUS = Path("/usr/share/doc/python3.11/html")
INCLUDE = ["*.html"]
EXCLUDE = ["genindex*", "py-modindex.html", "search.html", "_*"]
TENANT = "bench"
PAD_TENANTS = 10

QUESTIONS = [
    "How do I read a file line by line?",
    "What does the walrus operator do?",
    "How to sort a list of dictionaries by a key",
    "Difference between a list and a tuple",
    "How do I create a virtual environment?",
    "What is a generator expression?",
    "How do I format a string with f-strings?",
    "How do context managers work with the with statement?",
    "How to parse command line arguments",
    "What is the global interpreter lock?",
    "How do I run a subprocess and capture its output?",
    "How to serialize an object to JSON",
    "What are dataclasses used for?",
    "How do I use asyncio.gather?",
    "How does garbage collection work in CPython?",
    "How to create a temporary file",
    "What is the difference between is and ==?",
    "How do I define an abstract base class?",
    "How to compile a regular expression and find all matches",
    "How do I measure execution time of small code snippets?",
    "What does functools.lru_cache do?",
    "How to join paths with pathlib",
    "How do I handle keyboard interrupts?",
    "How to write unit tests with unittest",
    "What is a decorator?",
    "How to iterate over two lists in parallel",
    "How do I get the current date and time in UTC?",
    "How to copy a directory tree",
    "What are type hints and the typing module?",
    "How to use a thread pool executor",
    "How do I open a socket connection?",
    "What is the structure of a Python wheel?",
    "How to log messages to a file",
    "How do I compute a SHA-256 hash?",
    "How to read a CSV file into dictionaries",
    "What is the method resolution order?",
    "How do I make an HTTP request with urllib?",
    "What are f-string format specifications for floats?",
    "How to use enum.Enum",
    "How do I raise an exception with a cause?",
]


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def timed(call: Callable[[], object], count: int) -> tuple[float, float]:
    """(p50, p99) in ms of `count` calls, after a short warm-up."""
    for _ in range(3):
        call()
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return percentile(seconds, 50) * 1000, percentile(seconds, 99) * 1000


def search_latency(kb: KnowledgeBase, count: int, mode: str = "hybrid") -> tuple[float, float]:
    questions = iter(QUESTIONS * (count // len(QUESTIONS) + 2))
    return timed(lambda: kb.search(TENANT, next(questions), top_k=5, mode=mode), count)


def store_latency(kb: KnowledgeBase, count: int) -> tuple[float, float]:
    """The store's share: hybrid query with vectors computed beforehand."""
    vectors = [(kb.embedder.embed_query(q), kb.embedder.sparse_query(q)) for q in QUESTIONS]
    cycle = iter(vectors * (count // len(vectors) + 2))

    def query() -> None:
        dense, sparse = next(cycle)
        kb.store.query(TENANT, dense=dense, sparse=sparse, limit=5)

    return timed(query, count)


def limited_corpus(folder: Path, limit: int | None, workdir: Path) -> Path:
    """The corpus folder, or a tree of links to its first `limit` included files."""
    if limit is None:
        return folder
    files = sorted(
        p
        for p in folder.rglob("*.html")
        if not any(p.relative_to(folder).match(pattern) for pattern in EXCLUDE)
        and not any(part.startswith("_") for part in p.relative_to(folder).parts)
    )[:limit]
    tree = workdir / "corpus"
    for file in files:
        link = tree / file.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(file)
    return tree


def synthetic_points(count: int, words: list[str], dim: int, kb: KnowledgeBase, seed: int = 0):
    """(tenant, points) batches of random chunks: random unit vectors, BM25 of random words."""
    import numpy as np

    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    batch = 1000
    for start in range(0, count, batch):
        size = min(batch, count - start)
        vectors = rng.normal(size=(size, dim)).astype("float32")
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        tenant = f"pad-{(start // batch) % PAD_TENANTS}"
        points = []
        for i in range(size):
            n = start + i
            text = " ".join(pick.choices(words, k=60))
            sparse = kb.embedder.sparse_document(text)
            payload = {"text": text, "source": f"synthetic/{n // 10}", "metadata": {}}
            points.append(
                ChunkPoint(f"synthetic/{n // 10}", n % 10, vectors[i].tolist(), sparse, payload)
            )
        yield tenant, points


def pad_store(store: Store, kb: KnowledgeBase, count: int, words: list[str]) -> float:
    """Add `count` synthetic chunks of other tenants; returns points/s of the upserts."""
    spent = 0.0
    for tenant, points in synthetic_points(count, words, store.dim, kb):
        started = time.perf_counter()
        store.upsert(tenant, points)
        spent += time.perf_counter() - started
    return count / spent if spent else 0.0


def copy_real_chunks(source: Store, target: Store, cap: int) -> int:
    copied = 0
    batch: list[ChunkPoint] = []
    for point in source.scroll(TENANT, with_vectors=True):
        if copied + len(batch) >= cap:
            break
        payload = {
            k: v for k, v in point.payload.items() if k not in ("tenant", "doc_id", "chunk_index")
        }
        sparse = point.sparse or SparseVec([], [])
        batch.append(
            ChunkPoint(
                point.payload["doc_id"], point.payload["chunk_index"], point.dense, sparse, payload
            )
        )
        if len(batch) == 1000:
            target.upsert(TENANT, batch)
            copied += len(batch)
            batch = []
    if batch:
        target.upsert(TENANT, batch)
        copied += len(batch)
    return copied


def optimize_with_stall(kb: KnowledgeBase) -> tuple[float, float]:
    """(seconds of `optimize()`, longest stall of another Python thread meanwhile)."""
    ticks: list[float] = []
    stop = threading.Event()

    def tick() -> None:
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.01)

    ticker = threading.Thread(target=tick)
    ticker.start()
    time.sleep(0.1)
    started = time.perf_counter()
    kb.optimize()
    seconds = time.perf_counter() - started
    stop.set()
    ticker.join()
    stall = max((b - a for a, b in itertools.pairwise(ticks)), default=0.0)
    return seconds, stall


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            print("  ".join("-" * w for w in widths))


def report_row(name: str, report: IngestReport) -> list[object]:
    rate = report.chunks / report.seconds if report.seconds else 0.0
    return [
        name,
        len(report.added) + len(report.updated),
        len(report.unchanged),
        len(report.failed),
        report.chunks,
        f"{report.seconds:.2f}",
        f"{rate:.1f}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "folder", nargs="?", type=Path, default=DEFAULT_CORPUS, help="corpus folder"
    )
    parser.add_argument("--limit", type=int, help="ingest only the first N files")
    parser.add_argument(
        "--pad-to", type=int, default=100_000, help="store size for the large point"
    )
    parser.add_argument("--local-cap", type=int, default=20_000, help="max points in local mode")
    parser.add_argument("--queries", type=int, default=200, help="searches per latency figure")
    parser.add_argument(
        "--optimize",
        action="store_true",
        help="also time edge's optimize() (HNSW build) on the real chunks; slow, blocks",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: half the cores)"
    )
    args = parser.parse_args()
    if not args.folder.is_dir():
        print(
            f"error: {args.folder} is not a folder (apt-get install -y python3.11-doc)",
            file=sys.stderr,
        )
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="lorag-bench-ingest-"))
    try:
        return run(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, workdir: Path) -> int:
    corpus = limited_corpus(args.folder, args.limit, workdir)
    started = time.perf_counter()
    kb = open_knowledge_base(Settings(data_dir=workdir / "data"), embed_threads=args.threads)
    open_seconds = time.perf_counter() - started
    print(
        f"corpus {args.folder} (limit {args.limit}); knowledge base opened in {open_seconds:.1f} s"
    )

    first = kb.ingest_paths(TENANT, [corpus], include=INCLUDE, exclude=EXCLUDE)
    again = kb.ingest_paths(TENANT, [corpus], include=INCLUDE, exclude=EXCLUDE, progress=False)
    speedup = first.seconds / again.seconds if again.seconds else float("inf")
    table(
        "Ingest (qdrant-edge, all-MiniLM-L6-v2 on CPU)",
        ["run", "written docs", "unchanged", "failed", "chunks", "seconds", "chunks/s"],
        [report_row("first ingest", first), report_row("unchanged re-ingest", again)],
    )
    print(f"unchanged re-ingest is {speedup:.0f}x faster than the first ingest (goal >= 20x)")
    for name, reason in first.failed[:5]:
        print(f"  failed: {name}: {reason}")

    real = kb.store.count(TENANT)
    words = sorted(
        {
            w
            for p in kb.store.scroll(TENANT, fields=["text"])
            for w in p.payload["text"].split()
            if w.isalpha()
        }
    )
    embed = timed(
        lambda: kb.embedder.embed_query("How do I read a file line by line?"), args.queries
    )
    rows: list[list[object]] = []

    def measure(label: str, target: KnowledgeBase, size: int, count: int) -> None:
        p50, p99 = search_latency(target, count)
        s50, s99 = store_latency(target, count)
        rows.append([label, size, f"{p50:.1f}", f"{p99:.1f}", f"{s50:.2f}", f"{s99:.2f}"])

    measure("edge, real chunks", kb, real, args.queries)
    optimized = None
    if args.optimize:
        optimized = optimize_with_stall(kb)
        measure("edge, real chunks, after optimize (HNSW)", kb, real, args.queries)

    pad = max(0, args.pad_to - real)
    edge_rate = pad_store(kb.store, kb, pad, words) if pad else 0.0
    total = real + pad
    measure("edge, padded", kb, total, args.queries)
    for mode in ("dense", "sparse"):
        p50, p99 = search_latency(kb, args.queries, mode)
        rows.append([f"edge, padded, {mode} only", total, f"{p50:.1f}", f"{p99:.1f}", "", ""])
    edge_rss = rss_mb()

    local = QdrantStore(":memory:", "bench", kb.store.dim)
    local_kb = KnowledgeBase(local, kb.embedder, chunk_tokens=200, chunk_overlap=40)
    copied = copy_real_chunks(kb.store, local, args.local_cap)
    local_queries = max(20, args.queries // 4)
    measure("local mode, real chunks", local_kb, copied, local_queries)
    local_pad = max(0, args.local_cap - copied)
    local_rate = pad_store(local, kb, local_pad, words) if local_pad else 0.0
    if local_pad:
        label = f"local mode, padded (capped at {args.local_cap})"
        measure(label, local_kb, copied + local_pad, local_queries)
    table(
        "Hybrid search with tenant filter, per call incl. query embedding (top 5), ms",
        ["store", "points", "p50", "p99", "store p50", "store p99"],
        rows,
    )
    print(f"query embedding alone: p50 {embed[0]:.1f} ms, p99 {embed[1]:.1f} ms")
    by_label = {row[0]: row for row in rows}
    edge_real, local_real = by_label["edge, real chunks"], by_label["local mode, real chunks"]
    edge_big = by_label["edge, padded"]
    local_big = next((row for label, row in by_label.items() if "capped" in label), local_real)
    table(
        "qdrant-edge vs qdrant-client local mode",
        ["measure", "qdrant-edge", "local mode"],
        [
            ["upsert, points/s", f"{edge_rate:.0f}", f"{local_rate:.0f}"],
            [
                "hybrid p50 ms (points), real chunks",
                f"{edge_real[2]} ({edge_real[1]})",
                f"{local_real[2]} ({local_real[1]})",
            ],
            [
                "hybrid p50 ms (points), padded",
                f"{edge_big[2]} ({edge_big[1]})",
                f"{local_big[2]} ({local_big[1]})",
            ],
            ["store-only p50 ms, padded", edge_big[4], local_big[4]],
            ["process max RSS, MB", f"{edge_rss:.0f}", f"{rss_mb():.0f} (both stores)"],
        ],
    )
    if optimized is not None:
        print(
            f"edge optimize() at {real} chunks: {optimized[0]:.1f} s, other threads stalled "
            f"up to {optimized[1]:.1f} s (it holds the GIL)"
        )
    local_kb.close()
    kb.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
