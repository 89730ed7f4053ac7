"""The ``qa`` command: index articles, ask questions, serve the chat, evaluate.

    qa index seeds/                 add new and changed articles, drop deleted ones
    qa index --rebuild              rebuild from scratch from the paths indexed before
    qa index --feed URL             remember an RSS/Atom feed; fetch and index its entries (--url: one page)
    qa index                        refresh every remembered feed and folder
    qa watch --every 15m            the same, again and again until Ctrl-C
    qa status                       what is indexed
    qa ask "Where does IS still hold villages?"   [-k 5] [--json] [--since/--until] [--source]
    qa serve                        the chat on http://127.0.0.1:7860
    qa eval squad FILE.json         retrieval quality on a SQuAD-format question set

Environment (read here only): QA_INDEX_DIR (default ./index), QA_UPLOADS_DIR (default
./uploads), QA_HOST, QA_PORT, QA_AUTH ("user:password", asks for a login in the web chat),
QA_UPLOAD_BUDGET (MB of uploads accepted an hour; default 20 without a login),
QA_BACKEND and QA_PRECISION (how the model runs; default auto), QA_CACHE_DIR (where the
converted model is kept; default $XDG_CACHE_HOME/news-qa or ~/.cache/news-qa).
"""

from __future__ import annotations

import argparse
import sqlite3
import json
import os
import shutil
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import logging

from embeddings.encoder import BACKENDS, PRECISIONS, SENTENCE_VECTORS, BackendUnavailable, ModelNotFound
from embeddings.manifest import IndexProblem
from embeddings.settings import IndexSettings
from embeddings.vector_index import IVF_FROM, KINDS
from qa.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is packaged: never ask a hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING, format="qa: %(message)s")
    index = IndexSettings(index_dir=Path(args.index_dir), backend=args.backend, precision=args.precision,
                          vector_index=args.vector_index, sentence_vectors=args.sentence_vectors,
                          passage_context=args.passage_context, model_cache=_cache_dir(),
                          vector_store=args.vector_store, milvus_uri=args.milvus_uri,
                          milvus_collection=args.milvus_collection)
    settings = Settings(index=index, uploads_dir=Path(args.uploads_dir), web_dir=Path(args.web_dir))
    try:
        return args.run(args, settings)
    except BrokenPipeError:  # `qa ask ... | head`: the reader has gone; nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except IndexProblem as e:
        print(f"qa: {e}", file=sys.stderr)
        return 2
    except (BackendUnavailable, ModelNotFound) as e:
        print(f"qa: {e}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as e:  # a damaged store.sqlite (a corrupt page, a truncated file)
        from embeddings.check import damaged_store

        print(f"qa: {damaged_store(settings.index.index_dir, e)} (`qa check --index-dir {args.index_dir}` "
              f"says more)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qa: interrupted; what was committed stays (run the same command again to finish: "
              "articles already committed are not encoded again)", file=sys.stderr)
        return 130


def _cache_dir() -> Path:
    if os.environ.get("QA_CACHE_DIR"):
        return Path(os.environ["QA_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "news-qa"


def _add_common(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """The options every command takes, before or after the command's name; given after it
    they win (the subcommand's copies default to "not given")."""
    def default(value):
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--index-dir", default=default(os.environ.get("QA_INDEX_DIR", "index")),
                        help="index directory (default: $QA_INDEX_DIR or ./index)")
    parser.add_argument("--uploads-dir", default=default(os.environ.get("QA_UPLOADS_DIR", "uploads")),
                        help="where the web app keeps uploaded articles (default: $QA_UPLOADS_DIR or ./uploads)")
    parser.add_argument("--web-dir", default=default(os.environ.get("QA_WEB_DIR", "web")),
                        help="where feeds are remembered and fetched pages kept (default: $QA_WEB_DIR or ./web)")
    parser.add_argument("--backend", choices=["auto", *BACKENDS], default=default(os.environ.get("QA_BACKEND", "auto")),
                        help="how the model runs (default: what the index was built with, else openvino)")
    parser.add_argument("--precision", choices=["auto", *PRECISIONS], default=default(os.environ.get("QA_PRECISION", "auto")),
                        help="bf16 or fp32 (default: what the index was built with, else bf16 where "
                             "the CPU has bfloat16 instructions)")
    parser.add_argument("--vector-index", choices=["auto", *KINDS], default=default("auto"),
                        help=f"exact (flat) or approximate (ivf) vector search; auto: ivf from "
                             f"{IVF_FROM:,} passages")
    parser.add_argument("--vector-store", choices=["auto", "faiss", "milvus"],
                        default=default(os.environ.get("QA_VECTOR_STORE", "auto")),
                        help="where vectors are searched: a FAISS file beside the store, or a Milvus server "
                             "(auto: what the index was built with, else faiss)")
    parser.add_argument("--milvus-uri", default=default(os.environ.get("QA_MILVUS_URI", "http://127.0.0.1:19530")),
                        help="the Milvus server (with --vector-store milvus; default $QA_MILVUS_URI or "
                             "http://127.0.0.1:19530)")
    parser.add_argument("--milvus-collection", default=default(os.environ.get("QA_MILVUS_COLLECTION")),
                        help="the collection (default: one named after the index directory)")
    parser.add_argument("--sentence-vectors", choices=SENTENCE_VECTORS, default=default("in-context"),
                        help="in-context (free) or separate (twice the encoding time); takes effect "
                             "when an index is built")
    parser.add_argument("--passage-context", choices=("none", "title"), default=default("none"),
                        help="encode each passage with its article's title in front; takes effect when "
                             "an index is built")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qa", description="Ask questions of a collection of news articles.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n")[1])
    _add_common(parser, defaults=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("index", help="add, update or remove articles (files or folders)")
    _add_common(p, defaults=False)
    p.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                   help="files and folders; none: refresh every remembered feed and folder")
    p.add_argument("--feed", action="append", default=[], metavar="URL",
                   help="an RSS or Atom feed: remembered, its entries' pages fetched and indexed")
    p.add_argument("--url", action="append", default=[], metavar="URL", help="one article page to fetch and index")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="embed on a Ray cluster (with no ADDRESS: a local Ray instance on loopback)")
    p.add_argument("--rebuild", action="store_true",
                   help="rebuild from scratch (from the paths indexed before when none are given)")
    p.add_argument("--rebuild-if-stale", action="store_true",
                   help="rebuild when the index was built with another model or chunker")
    p.add_argument("--repair", action="store_true",
                   help="rewrite the vector file and manifest from the store (no encoding); a damaged "
                        "store is moved aside and built again from PATHs, or else from what it was built from")
    p.set_defaults(run=cmd_index)

    p = sub.add_parser("watch", help="refresh every remembered feed and folder, again and again")
    _add_common(p, defaults=False)
    p.add_argument("--every", type=duration, default=duration("15m"), metavar="DURATION",
                   help="time between refreshes: 90s, 15m, 2h (default 15m)")
    p.set_defaults(run=cmd_watch)

    p = sub.add_parser("check", help="check the index thoroughly (SQLite integrity, vectors, counts)")
    _add_common(p, defaults=False)
    p.set_defaults(run=cmd_check)

    p = sub.add_parser("status", help="what is indexed")
    _add_common(p, defaults=False)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_status)

    p = sub.add_parser("ask", help="answer a question with cited passages")
    _add_common(p, defaults=False)
    p.add_argument("question")
    p.add_argument("-k", type=int, default=None, help="passages to show (default 5)")
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    p.add_argument("--since", help="only articles dated on or after YYYY-MM-DD")
    p.add_argument("--until", help="only articles dated on or before YYYY-MM-DD")
    p.add_argument("--source", action="append", default=[], help="only articles from this source (repeatable)")
    p.add_argument("--as-of", help="ask as on YYYY-MM-DD: articles published near it are preferred (default today)")
    p.add_argument("--method", choices=["hybrid", "dense", "lexical", "rrf"], default=None)
    p.set_defaults(run=cmd_ask)

    p = sub.add_parser("serve", help="start the web chat")
    _add_common(p, defaults=False)
    p.add_argument("--host", default=os.environ.get("QA_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("QA_PORT", "7860")))
    p.add_argument("--upload-budget", type=float, metavar="MB", default=_env_float("QA_UPLOAD_BUDGET"),
                   help="megabytes of uploads accepted per hour, all users together (0: no uploads); "
                        f"default {OPEN_UPLOAD_BUDGET:g} without a login, no limit with QA_AUTH")
    p.set_defaults(run=cmd_serve)

    p = sub.add_parser("eval", help="measure retrieval on a question set")
    _add_common(p, defaults=False)
    p.add_argument("format", choices=["squad"])
    p.add_argument("path", type=Path, nargs="+", help="SQuAD-format question sets (several: with --cross-validate)")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="keep the evaluation's index here (a second run re-encodes nothing); default: temporary")
    p.add_argument("--method", choices=["lexical", "dense", "rrf", "hybrid", "all"], default="all")
    p.add_argument("--limit", type=int, default=None, help="evenly spread subset of N questions")
    p.add_argument("--off-topic", type=Path, default=None, metavar="FILE",
                   help="also ask this SQuAD-format file's questions (about other articles) and report "
                        "how many the \"not covered\" rule refuses")
    p.add_argument("--json", type=Path, default=None, metavar="OUT",
                   help="write the report here, and a recall@k plot beside it (.png)")
    p.add_argument("--cross-validate", action="store_true",
                   help="choose the fusion weights on article folds and report held-out figures")
    p.add_argument("--folds", type=int, default=4)
    p.set_defaults(run=cmd_eval)
    return parser


def encoder_for(settings: Settings):
    """The encoder for the index under ``settings`` (``auto`` follows what built it)."""
    from embeddings.reader import encoder_for

    return encoder_for(settings.index)


def open_retriever(settings: Settings):
    """The index under ``settings`` opened with the configured model, ready to search."""
    from embeddings.reader import open_index
    from qa.retrieve import Retriever

    encoder = encoder_for(settings)
    index = open_index(settings.index, encoder.identity, encoder.dimension)
    return Retriever(index, encoder, settings)


def cmd_index(args, settings: Settings) -> int:
    if args.repair:
        return _repair(args, settings)
    if args.ray is not None:
        from embeddings.ray_encoder import CHUNK_PASSAGES, RayEncoder, ray_cluster

        with ray_cluster(args.ray or None):
            encoder = RayEncoder(encoder_for(settings))
            print(f"qa index: embedding on Ray, {encoder.workers} workers", file=sys.stderr)
            chunked = replace(settings, index=replace(settings.index, commit_every=CHUNK_PASSAGES))
            return index_once(chunked, args.paths, args.feed, args.url, args.rebuild, args.rebuild_if_stale,
                              encoder=encoder)
    return index_once(settings, args.paths, args.feed, args.url, args.rebuild, args.rebuild_if_stale)


def index_once(settings: Settings, paths: list[Path], feeds: list[str] = (), urls: list[str] = (),
               rebuild: bool = False, rebuild_if_stale: bool = False, encoder=None) -> int:
    """One `qa index`: fetch the feeds and links named, then update the index from ``paths``
    and the web folder. With nothing named: refresh every remembered feed and folder."""
    from embeddings.indexer import indexed_roots, update_index
    from embeddings.manifest import IndexMismatch

    everything = not (paths or feeds or urls or rebuild)
    fetched = fetch_web(settings, list(feeds), list(urls), refresh_all=everything)
    paths = list(paths)
    named = {str(p) for p in paths}  # folders the user named: say which of their files were not read
    if fetched is not None:
        paths.append(settings.web_dir)
    if everything:
        paths = [*indexed_roots(settings.index), *paths]
        if not paths:
            print("qa index: name the files or folders to index, e.g. `qa index seeds/` (or a feed: "
                  "`qa index --feed URL`)", file=sys.stderr)
            return 2
    encoder = encoder or encoder_for(settings)
    progress = sys.stderr.isatty()
    try:
        report = update_index(paths, settings.index, encoder, rebuild=rebuild, progress=progress)
    except IndexMismatch as e:
        if not rebuild_if_stale:
            raise
        # Rebuild from everything indexed before too (uploads included), not only from PATHs.
        paths = {p.resolve(): p for p in [*indexed_roots(settings.index), *paths]}
        print(f"qa: {e}\nqa: rebuilding from {', '.join(str(p) for p in paths.values())}.", file=sys.stderr)
        report = update_index(list(paths.values()), settings.index, encoder, rebuild=True, progress=progress)
    if fetched is not None:
        report.errors[:0] = fetched.errors
    for title in report.added:
        print(f"added    {title}")
    for title in report.updated:
        print(f"updated  {title}")
    for title in report.removed:
        print(f"removed  {title}")
    print(f"{len(report.added)} added, {len(report.updated)} updated, {len(report.removed)} removed, "
          f"{report.unchanged} unchanged; {report.passages_encoded} passages encoded")
    for folder, others in report.other_files.items():
        if folder in named:
            print(f"note: {_not_read(folder, others)}", file=sys.stderr)
    for error in report.errors:
        print(f"error: {error} (skipped; the index keeps what it had for it)", file=sys.stderr)
    return 1 if report.errors else 0


def _not_read(folder: str, others: list[str], shown: int = 3) -> str:
    """'docs: 2 files not read (a.pdf, b.csv): qa reads .txt, ... (convert them ...)' for the
    files of other types in ``folder``, the first ``shown`` of them by name."""
    from embeddings.articles import SUPPORTED_SUFFIXES

    names = [Path(o).name for o in others[:shown]]
    more = f" and {len(others) - shown} more" if len(others) > shown else ""
    files = "1 file" if len(others) == 1 else f"{len(others)} files"
    return (f"{folder}: {files} not read ({', '.join(names)}{more}): qa reads "
            f"{', '.join(SUPPORTED_SUFFIXES)} (convert them to one of these to index them)")


def cmd_watch(args, settings: Settings) -> int:
    """Refresh every remembered feed and folder every ``--every`` until Ctrl-C (or SIGTERM),
    which ends it after the update under way; a second Ctrl-C stops at once (what was
    committed stays)."""
    import datetime as dt
    import signal
    import threading

    stop = threading.Event()

    def request_stop(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("qa watch: stopping after the current update (Ctrl-C again to stop now)", file=sys.stderr, flush=True)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    encoder = encoder_for(settings)
    every = args.every
    while not stop.is_set():
        print(f"qa watch: refreshing at {dt.datetime.now():%Y-%m-%d %H:%M:%S}", flush=True)
        try:
            if index_once(settings, [], encoder=encoder) == 2:
                return 2  # nothing to refresh
        except IndexProblem as e:  # busy (another update), say; try again next time
            print(f"qa: {e}", file=sys.stderr)
        sys.stdout.flush()
        if stop.wait(every):
            break
        print(flush=True)
    print("qa watch: stopped", file=sys.stderr)
    return 0


def duration(text: str) -> float:
    """Seconds in ``90``, ``30s``, ``15m``, ``2h`` or ``1d``."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text or "")
    if not m or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 15m, 2h or 1d")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def fetch_web(settings: Settings, feeds: list[str], urls: list[str], refresh_all: bool):
    """``embeddings.feeds.fetch_into`` for the web folder, printing what was fetched."""
    from embeddings.feeds import fetch_into

    report = fetch_into(settings.web_dir, feeds, urls, refresh_all)
    for title in report.saved if report else []:
        print(f"fetched  {title}")
    return report


def _repair(args, settings: Settings) -> int:
    from embeddings.indexer import repair_index

    repair = repair_index(settings.index, encoder=lambda: encoder_for(settings), paths=args.paths,
                          progress=sys.stderr.isatty())
    counts = repair.manifest["counts"]
    directory = settings.index.index_dir
    if repair.report is None:
        print(f"repaired {directory}/ from its store (articles: {counts['articles']}, passages: "
              f"{counts['passages']}): vectors and manifest rewritten, nothing encoded")
        return 0
    aside = f"; the damaged store is kept at {repair.moved_to}" if repair.moved_to else ""
    print(f"rebuilt {directory}/ from {', '.join(map(str, repair.sources))} (articles: {counts['articles']}, "
          f"passages: {counts['passages']}, {repair.report.passages_encoded} encoded){aside}")
    for error in repair.report.errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if repair.report.errors else 0


def cmd_check(args, settings: Settings) -> int:
    from embeddings.check import check_index

    problems = check_index(settings.index.index_dir, thorough=True)
    for problem in problems:
        print(f"problem: {problem}")
    if not problems:
        print(f"{settings.index.index_dir}/: no problems found (store integrity, vectors, manifest, counts)")
    return 1 if problems else 0


def cmd_status(args, settings: Settings) -> int:
    from embeddings.check import check_index
    from embeddings.manifest import read_manifest

    problems = check_index(settings.index.index_dir)
    for problem in problems:
        print(f"qa: problem: {problem}", file=sys.stderr)
    try:
        manifest = read_manifest(settings.index.index_dir)
    except IndexProblem:
        return 1
    if args.json:
        from dataclasses import asdict

        from embeddings.feeds import WebFolder

        print(json.dumps({**manifest, "feeds": [asdict(f) for f in WebFolder(settings.web_dir).feeds()]}, indent=2))
        return 0
    m, c = manifest["model"], manifest["counts"]
    v = manifest.get("vector_index", {})
    print(f"index:       {Path(settings.index.index_dir).resolve()}")
    print(f"articles:    {c['articles']}")
    print(f"passages:    {c['passages']}")
    print(f"model:       {m['name']} ({m['dimension']} dims, weights {m['sha256'][:12]}), "
          f"{m.get('backend')} {m.get('precision')}")
    print(f"chunker:     up to {manifest['chunker']['max_tokens']} word pieces, "
          f"target {manifest['chunker']['target_tokens']}; sentence vectors "
          f"{manifest.get('sentences', {}).get('vectors')}")
    vectors = f"{v.get('kind')}" + (f" ({v['nlist']} cells, {v['nprobe']} probed per query)" if v.get("nlist") else "")
    if v.get("kind") == "milvus":
        vectors = (f"milvus: collection {v.get('collection')} at {v.get('uri')} ({v.get('index')}, "
                   f"{v.get('metric')}); text, metadata and a copy of every vector stay in store.sqlite")
    print(f"vectors:     {vectors}")
    print(f"lexical:     BM25 on SQLite FTS5 in {Path(settings.index.index_dir).resolve() / 'store.sqlite'}")
    print(f"last update: {manifest['updated_at']}")
    for line in feed_lines(settings):
        print(line)
    return 1 if problems else 0


def feed_lines(settings: Settings) -> list[str]:
    """The remembered feeds, one line each: URL, title, last fetch, entries, last problem."""
    from embeddings.feeds import WebFolder
    from embeddings.fetch import FetchError

    try:
        feeds = WebFolder(settings.web_dir).feeds()
    except FetchError as e:
        return [f"feeds:       {e}"]
    lines = []
    for n, feed in enumerate(feeds):
        when = f"last fetched {feed.fetched_at}" if feed.fetched_at else "not fetched yet"
        problem = f"; last refresh: {feed.error}" if feed.error else ""
        title = f" ({feed.title})" if feed.title else ""
        lines.append(f"{'feeds:' if n == 0 else '':<13}{feed.url}{title}: {feed.entries} entries, {when}{problem}")
    return lines


def cmd_ask(args, settings: Settings) -> int:
    from embeddings.articles import ArticleError, parse_date
    from embeddings.store import Filters
    from qa.pipeline import ask

    try:
        filters = Filters(parse_date("--since", args.since), parse_date("--until", args.until),
                          tuple(args.source))
        as_of = parse_date("--as-of", args.as_of)
    except ArticleError as e:
        print(f"qa ask: {e}", file=sys.stderr)
        return 2
    if args.method:
        settings = replace(settings, fusion=args.method)
    retriever = open_retriever(settings)
    try:
        answer = ask(retriever, args.question, k=args.k, filters=filters, as_of=as_of)
    except ValueError as e:
        print(f"qa ask: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
    else:
        width = min(shutil.get_terminal_size((80, 24)).columns, 100)
        print(format_answer(answer, width, color=sys.stdout.isatty()))
    return 0


def format_answer(answer, width: int = 80, color: bool = False) -> str:
    """The answer as plain text that fits ``width`` columns; highlights in bold or »…«."""
    on, off = ("\033[1m", "\033[0m") if color else ("»", "«")
    out = []
    if answer.searched != answer.question:
        out.append(textwrap.fill(f"(searched: {answer.searched})", width))
    if answer.window:
        out.append(textwrap.fill(f"[searching {answer.window.label}: “{answer.window.phrase}”; --since/--until "
                                 f"search other dates]", width))
    for note in answer.notes:
        if note != answer.text:
            out.append(textwrap.fill(note, width))
    out.append(textwrap.fill(answer.text, width))
    if answer.sources:
        out.append("")
        out.append("Sources:" if answer.covered else "Closest matches:")
    for s in answer.sources:
        p = s.hit.passage
        head = f"[{s.number}] {s.label}"
        out.append(textwrap.fill(head, width, subsequent_indent="    "))
        if p.url or p.source:
            out.append(textwrap.fill(" · ".join(x for x in (p.source, p.url) if x), width,
                                     initial_indent="    ", subsequent_indent="    "))
        if s.also_line:
            out.append(textwrap.fill(s.also_line, width, initial_indent="    ", subsequent_indent="    "))
        body = " ".join("".join(on + t + off if marked else t for t, marked in s.segments()).split())
        out.extend(_wrap_ansi(body, width) if color else
                   textwrap.wrap(body, width, initial_indent="    ", subsequent_indent="    "))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _wrap_ansi(text: str, width: int) -> list[str]:
    """Wrap on the visible text: ANSI codes take no columns."""
    lines, line, visible = [], "    ", 4
    for word in text.split(" "):
        w = len(word.replace("\033[1m", "").replace("\033[0m", ""))
        if visible + w + 1 > width and visible > 4:
            lines.append(line.rstrip())
            line, visible = "    ", 4
        line += word + " "
        visible += w + 1
    lines.append(line.rstrip())
    return lines


OPEN_UPLOAD_BUDGET = 20.0  # MB an hour when anyone who reaches the page may upload


def _env_float(name: str) -> float | None:
    value = os.environ.get(name)
    try:
        return float(value) if value else None
    except ValueError:
        sys.exit(f"qa: {name} must be a number of megabytes, not {value!r}")


def cmd_serve(args, settings: Settings) -> int:
    import app

    auth = os.environ.get("QA_AUTH")
    if auth and ":" not in auth:
        print("qa serve: QA_AUTH must be user:password", file=sys.stderr)
        return 2
    credentials = tuple(auth.split(":", 1)) if auth else None
    loopback = args.host in ("127.0.0.1", "localhost", "::1")
    if not loopback and credentials is None:
        print("qa serve: warning: serving beyond this machine without a login; "
              "set QA_AUTH=user:password to require one (until then uploads are limited and "
              "the page cannot rebuild the index)", file=sys.stderr)
    budget = args.upload_budget if args.upload_budget is not None else (
        None if credentials else OPEN_UPLOAD_BUDGET)
    settings = replace(settings, upload_budget_mb=budget, web_rebuild=loopback or credentials is not None)
    app.serve(settings, host=args.host, port=args.port, auth=credentials)
    return 0


def cmd_eval(args, settings: Settings) -> int:
    from qa.evaluate import METHODS, evaluate_squad, format_table, save_report

    missing = [p for p in args.path + ([args.off_topic] if args.off_topic else []) if not p.exists()]
    if missing:
        print(f"qa eval: {missing[0]}: no such file", file=sys.stderr)
        return 2
    if args.cross_validate:
        from qa.tune import cross_validate, format_cv

        report = cross_validate(args.path, settings, encoder_for(settings), args.folds,
                                progress=sys.stderr.isatty(), work_dir=args.work_dir)
        print(format_cv(report))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
            print(f"report: {args.json}")
        return 0
    if len(args.path) > 1:
        print("qa eval: name one question set (several only with --cross-validate)", file=sys.stderr)
        return 2
    methods = METHODS if args.method == "all" else (args.method,)
    report = evaluate_squad(args.path[0], settings, encoder_for(settings), methods, args.limit,
                            progress=sys.stderr.isatty(), work_dir=args.work_dir, off_topic=args.off_topic)
    print(format_table(report))
    if args.json:
        plot = save_report(report, args.json)
        print(f"report: {args.json}\nplot:   {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
