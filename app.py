"""The Gradio chat: wiring and presentation only; the answering is ``qa.pipeline.ask``.

Start it with ``qa serve`` or ``make run`` (http://127.0.0.1:7860). Every piece of article
text reaches the page through ``as_text``: shown as written, never read as HTML or Markdown. Named API endpoints (see the README):
``/ask``, ``/articles``, ``/add_articles``, ``/rebuild``, ``/status``.
"""

from __future__ import annotations

import datetime as dt
import html
import re

from embeddings.articles import SUPPORTED_SUFFIXES
from embeddings.manifest import IndexProblem
from embeddings.store import Filters
from embeddings.uploads import MAX_UPLOAD_BYTES, base_name
from qa.answer import Answer
from qa.conversation import contextualize
from qa.live_index import LiveIndex, Status
from qa.settings import Settings

UPLOAD_TYPES = list(SUPPORTED_SUFFIXES)
UPLOAD_LIMIT = f"{MAX_UPLOAD_BYTES // (1024 * 1024)} MB"
ARTICLE_COLUMNS = ["Title", "Date", "Source", "Passages"]
CSS = """
.date-chip { display: inline-block; padding: 1px 10px; border-radius: 999px; border: 1px solid #9db3d8;
             background: #eef3fb; font-size: 0.9em; }
"""
FEED_COLUMNS = ["Feed", "Title", "Last fetched", "Entries", "Last problem"]


def searched_queries(user_messages: list[str], indexed=None) -> list[str]:
    """Replay the conversation's rewriting so a follow-up sees what was searched before it
    (``indexed``: the retriever's, as ``qa.pipeline.ask`` rewrites with it)."""
    queries: list[str] = []
    for message in user_messages:
        queries.append(contextualize(message, queries, indexed))
    return queries


# Characters that HTML or Markdown read as markup wherever they stand (tags, entities, the
# brackets of links and images, emphasis, code, tables, maths, e-mail autolinks), shown as
# character references; and the few that are markup only in some places (URL and "www."
# autolinks, list markers and heading underlines at the start of a line).
_AS_TEXT = str.maketrans({c: f"&#{ord(c)};" for c in "&<>\"'\\`*_{}[]#|~$@"})
_IN_PLACE = [(re.compile(r"://"), "&#58;//"),
             (re.compile(r"(?i)\bwww\."), lambda m: m.group(0)[:3] + "&#46;"),
             (re.compile(r"(?m)^(\s*)([-+=])"), lambda m: f"{m.group(1)}&#{ord(m.group(2))};"),
             (re.compile(r"(?m)^(\s*\d+)\."), r"\1&#46;")]


def as_text(text: str) -> str:
    r"""``text`` for the chat, which renders Markdown and HTML: whatever either would read as
    markup becomes a character reference, so article text shows as written and nothing in it
    can load, link or run.

    >>> as_text("![p](http://x/p.png) <b>*hi*</b>")
    '!&#91;p&#93;(http&#58;//x/p.png) &#60;b&#62;&#42;hi&#42;&#60;/b&#62;'
    >>> as_text("- one\n2. two, see www.example.org")
    '&#45; one\n2&#46; two, see www&#46;example.org'
    """
    text = text.translate(_AS_TEXT)
    for pattern, replacement in _IN_PLACE:
        text = pattern.sub(replacement, text)
    return text


def render_answer(answer: Answer) -> list[dict]:
    """The reply as chat messages: the one-line answer, then one collapsible message per source."""
    head = as_text(answer.text)
    if answer.notes and answer.notes[0] != answer.text:
        head = "<br>".join(f"<small>{as_text(n)}</small>" for n in answer.notes) + "\n\n" + head
    if answer.window:
        chip = (f"<span class='date-chip'>searching {as_text(answer.window.label)}</span> "
                f"<small>from “{as_text(answer.window.phrase)}”: now in From/To date beside the chat, "
                f"where it can be changed</small>")
        head = chip + "\n\n" + head
    if answer.searched != answer.question:
        head += f"\n\n<small>Searched: <i>{as_text(answer.searched)}</i></small>"
    if not answer.covered and answer.sources:
        head += "\n\nClosest matches, not answers:"
    messages = [{"role": "assistant", "content": head}]
    for s in answer.sources:
        p = s.hit.passage
        body = "".join(f"<mark>{as_text(t)}</mark>" if marked else as_text(t)
                       for t, marked in s.segments()).replace("\n\n", "<br><br>")
        where = " · ".join(as_text(x) for x in (p.source, p.url) if x)
        content = body + (f"<br><small>{where}</small>" if where else "")
        if s.hit.also:
            names = ", ".join(as_text(m.source or _short(m.title)) + (f" ({as_text(m.url)})" if m.url else "")
                              for m in s.hit.also)
            content += f"<br><small>also published by: {names}</small>"
        messages.append({"role": "assistant", "content": content,
                         "metadata": {"title": f"[{s.number}] {as_text(s.label)}", "status": "done"}})
    return messages


def _short(title: str, limit: int = 60) -> str:
    return title if len(title) <= limit else title[:limit - 1].rstrip() + "…"


def status_line(status: Status) -> str:
    """``3 articles · 12 passages · model all-MiniLM-L6-v2 · updated 2026-11-24 16:02 UTC``."""
    parts = [_count(status.articles, "article"), _count(status.passages, "passage"),
             f"model {html.escape(status.model)}"]
    if status.updated_at:
        when = status.updated_at.replace("T", " ")[:16]
        parts.append(f"updated {html.escape(when)} UTC")
    if status.updating:
        parts.append("an update is running")
    return " · ".join(parts)


def _count(n: int, noun: str) -> str:
    """``1 article``, ``3 articles``."""
    return f"{n} {noun}{'s' * (n != 1)}"


def parse_filters(since: str, until: str, sources: list[str] | None) -> Filters:
    """The sidebar's date range and sources as ``Filters``.

    Raises:
        ValueError: a date is not ``YYYY-MM-DD``, or the range is empty.
    """
    dates = []
    for label, value in (("From", since), ("To", until)):
        value = (value or "").strip()
        if value:
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{label} date “{value}” is not a date: use YYYY-MM-DD, "
                                 f"for example 2018-05-02.") from None
        dates.append(value or None)
    if dates[0] and dates[1] and dates[0] > dates[1]:
        raise ValueError(f"The date range {dates[0]} to {dates[1]} is empty: the From date is after the To date.")
    return Filters(dates[0], dates[1], tuple(sources or ()))


def make_chat(live: LiveIndex):
    """The chat function Gradio calls: ``(message, history, k, since, until, sources) -> messages``.

    A date window read from a question is also put in the From/To boxes beside the chat
    (``chat.dates_for``, called when the chat changes), where it can be edited or cleared: the
    boxes then hold for follow-up questions, and a question naming other dates replaces them.
    """
    import datetime as dt

    import gradio as gr

    from qa.dates import find_window
    from qa.pipeline import ask, is_blank

    filled: dict[str, tuple[str, str]] = {}   # per browser session: the window last put in the boxes
    pending: dict[str, tuple[str, str]] = {}  # ... and one still to be shown there

    def chat(message: str, history: list[dict], k: float = 5, since: str = "", until: str = "",
             sources: list[str] | None = None, request=None):
        if is_blank(message):
            return [{"role": "assistant", "content": "Please type a question."}]
        session = getattr(request, "session_hash", None) or ""
        if (since or "", until or "") == filled.get(session) and find_window(message, dt.date.today()):
            since = until = ""  # the boxes hold our own fill, and the question names other dates
        try:
            filters = parse_filters(since, until, sources)
        except ValueError as e:
            return [{"role": "assistant", "content": as_text(str(e))}]
        previous = [m["content"] for m in history
                    if m.get("role") == "user" and isinstance(m.get("content"), str)]
        with live.using() as retriever:
            answer = ask(retriever, message, searched_queries(previous, retriever.indexed), k=int(k),
                         filters=filters)
        if not answer.sources and filters:
            return [{"role": "assistant", "content": "No indexed article matches the date range and "
                                                     "sources chosen; widen them and ask again."}]
        if answer.window:
            filled[session] = pending[session] = (answer.window.since or "", answer.window.until or "")
        messages = render_answer(answer)
        if answer.window is None and (filters.since or filters.until):
            messages[0]["content"] = (f"<span class='date-chip'>searching {filters.since or '…'} – "
                                      f"{filters.until or '…'}</span> <small>the From/To dates beside the "
                                      f"chat</small>\n\n" + messages[0]["content"])
        return messages

    def dates_for(request=None):
        """The From/To boxes after an answer: the window it read from the question, if any."""
        window = pending.pop(getattr(request, "session_hash", None) or "", None)
        return (window[0], window[1]) if window else (gr.update(), gr.update())

    for fn in (chat, dates_for):  # Gradio passes the request to a parameter annotated with its class
        fn.__annotations__["request"] = gr.Request
    chat.dates_for = dates_for
    return chat


def make_ask_json(live: LiveIndex):
    """The ``/ask_json`` endpoint: the answer as ``qa ask --json`` prints it (sources with
    their story's other outlets, the date window searched, notes), less the server's file
    paths."""
    from qa.pipeline import ask, is_blank

    def ask_json(question: str, k: float = 5, since: str = "", until: str = "",
                 sources: list[str] | None = None) -> dict:
        if is_blank(question):
            return {"error": "the question is empty"}
        try:
            filters = parse_filters(since, until, sources)
        except ValueError as e:
            return {"error": str(e)}
        with live.using() as retriever:
            data = ask(retriever, question, k=int(k), filters=filters).to_dict()
        for source in data["sources"]:
            del source["path"]  # where the file is on the server: not the client's business
        return data

    return ask_json


def article_rows(live: LiveIndex, title_query: str = "") -> list[list]:
    """One row per indexed article (the table shows text, not HTML)."""
    return [[a.title, a.date or "", a.source or "", a.passages] for a in live.articles(title_query)]


def feed_rows(live: LiveIndex) -> list[list]:
    """The feeds table: URL, title, last fetch (UTC), entries saved, the last refresh's problem."""
    return [[f.url, f.title or "", (f.fetched_at or "not yet").replace("T", " ").replace("+00:00", " UTC"),
             f.entries, f.error or ""] for f in live.feeds()]


def report_markdown(report) -> str:
    """What an update did, escaped, one line per kind of change."""
    def names(titles):
        shown = ", ".join(f"“{as_text(t)}”" for t in titles[:10])
        return shown + (f" and {len(titles) - 10} more" if len(titles) > 10 else "")

    lines = []
    for label, titles in (("Added", report.added), ("Updated", report.updated), ("Removed", report.removed)):
        if titles:
            lines.append(f"**{label}** {len(titles)}: {names(titles)}")
    lines.append(f"{_count(report.passages_encoded, 'passage')} encoded; "
                 f"{_count(report.unchanged, 'article')} unchanged.")
    for error in report.errors:
        lines.append(f"**Not indexed:** {as_text(error)}")
    return "\n\n".join(lines)


def build_ui(live: LiveIndex):
    """The page: a Chat tab with settings beside it, an Articles tab, a status line."""
    import gradio as gr

    def refresh(title_query: str = ""):
        return (status_line(live.status()), article_rows(live, title_query),
                gr.Dropdown(choices=live.sources()), feed_rows(live))

    def add_web(url: str, title_query: str, kind: str, progress):
        if kind != "refresh" and not (url or "").strip():
            return ("Paste the address of a feed or of an article page first.", *refresh(title_query))
        progress(0, desc="Fetching")
        try:
            report = live.add_web(feeds=[url] if kind == "feed" else [], urls=[url] if kind == "page" else [],
                                  refresh_all=kind == "refresh", progress=True)
        except IndexProblem as e:
            return (as_text(str(e)), *refresh(title_query))
        return (report_markdown(report), *refresh(title_query))

    def add_feed(url: str, title_query: str = "", progress=gr.Progress(track_tqdm=True)):
        return add_web(url, title_query, "feed", progress)

    def add_page(url: str, title_query: str = "", progress=gr.Progress(track_tqdm=True)):
        return add_web(url, title_query, "page", progress)

    def refresh_feeds(title_query: str = "", progress=gr.Progress(track_tqdm=True)):
        return add_web("", title_query, "refresh", progress)

    def add_articles(files, title_query: str = "", progress=gr.Progress(track_tqdm=True)):
        if not files:
            return ("Choose one or more article files first.", *refresh(title_query))
        pairs = [(f, base_name(f)) for f in files]  # Gradio keeps the file's own name last in its path
        progress(0, desc="Reading and indexing")
        try:
            report = live.add_files(pairs, progress=True)
        except IndexProblem as e:
            return (as_text(str(e)), *refresh(title_query))
        return (report_markdown(report), *refresh(title_query))

    def rebuild(title_query: str = "", progress=gr.Progress(track_tqdm=True)):
        progress(0, desc="Rebuilding")
        try:
            report = live.rebuild(progress=True)
        except IndexProblem as e:
            return (as_text(str(e)), *refresh(title_query))
        return ("**Rebuilt.** " + report_markdown(report), *refresh(title_query))

    with gr.Blocks(title="News QA") as demo:  # CSS goes to launch() since Gradio 6
        gr.Markdown("## Ask the articles")
        status = gr.Markdown(status_line(live.status()), elem_id="status-line")
        with gr.Tab("Chat"):
            with gr.Row():
                with gr.Column(scale=1, min_width=220):
                    k = gr.Slider(1, 10, value=live.settings.k, step=1, label="Passages to show")
                    since = gr.Textbox(label="From date", placeholder="YYYY-MM-DD")
                    until = gr.Textbox(label="To date", placeholder="YYYY-MM-DD")
                    sources = gr.Dropdown(choices=live.sources(), value=[], multiselect=True,
                                          label="Sources", info="all when empty")
                with gr.Column(scale=4):
                    chat = make_chat(live)
                    chatbot = gr.Chatbot(height=560, sanitize_html=True, elem_id="chat")
                    gr.ChatInterface(chat, additional_inputs=[k, since, until, sources], api_name="ask",
                                     chatbot=chatbot, textbox=gr.Textbox(placeholder="Type a message...",
                                                                         elem_id="question", submit_btn=True,
                                                                         scale=7))
                    chatbot.change(chat.dates_for, None, [since, until], api_name=False, queue=False)
        with gr.Tab("Articles"):
            search = gr.Textbox(label="Search titles", placeholder="words in the title")
            table = gr.Dataframe(value=article_rows(live), headers=ARTICLE_COLUMNS,
                                 datatype=["str", "str", "str", "number"], interactive=False,
                                 column_widths=["58%", "14%", "16%", "12%"], wrap=True, elem_id="articles")
            budget = live.settings.upload_budget_mb
            allowance = f"; {budget:g} MB an hour on this server" if budget is not None else ""
            with gr.Row():
                web_url = gr.Textbox(label="Feed or article address", placeholder="https://…/rss.xml or "
                                     "https://…/story.html", scale=4, elem_id="web-url")
                add_feed_button = gr.Button("Add feed", elem_id="add-feed")
                add_page_button = gr.Button("Add page", elem_id="add-page")
                refresh_button = gr.Button("Refresh feeds now", elem_id="refresh-feeds")
            feeds_table = gr.Dataframe(value=feed_rows(live), headers=FEED_COLUMNS,
                                       datatype=["str", "str", "str", "number", "str"], interactive=False,
                                       wrap=True, elem_id="feeds")
            files = gr.File(label=f"Add articles ({' '.join(UPLOAD_TYPES)}; at most {UPLOAD_LIMIT} each{allowance})",
                            file_count="multiple", file_types=UPLOAD_TYPES, type="filepath", elem_id="upload")
            with gr.Row():
                add = gr.Button("Add to index", variant="primary")
                rebuild_button = gr.Button("Rebuild index")
            result = gr.Markdown(elem_id="update-result")
        search.change(lambda q: article_rows(live, q), search, table, api_name="articles")
        outputs = [result, status, table, sources, feeds_table]
        add.click(add_articles, [files, search], outputs, api_name="add_articles")
        rebuild_button.click(rebuild, [search], outputs, api_name="rebuild")
        add_feed_button.click(add_feed, [web_url, search], outputs, api_name="add_feed")
        add_page_button.click(add_page, [web_url, search], outputs, api_name="add_page")
        refresh_button.click(refresh_feeds, [search], outputs, api_name="refresh_feeds")
        demo.load(refresh, [search], [status, table, sources, feeds_table], api_name="status")
        gr.api(make_ask_json(live), api_name="ask_json")
    return demo


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 7860, auth=None) -> None:
    """Load the index once and serve the chat until interrupted."""
    from embeddings.reader import encoder_for
    from qa import entities

    live = LiveIndex(settings, encoder_for(settings.index))
    live.encoder.encode(["warm up"])  # load the model now, not on the first question
    entities.tag(["Warm up."])  # and the entity tagger
    build_ui(live).queue(default_concurrency_limit=4).launch(
        server_name=host, server_port=port, auth=auth, show_error=True, max_file_size=MAX_UPLOAD_BYTES,
        css=CSS)

