"""The Gradio chat: wiring and presentation only; the answering is ``qa.pipeline.ask``.

Start it with ``qa serve`` or ``make run`` (http://127.0.0.1:7860). Every piece of article
text is HTML-escaped before it reaches the page.
"""

from __future__ import annotations

import html

from qa.answer import Answer
from qa.conversation import contextualize
from qa.settings import Settings


def searched_queries(user_messages: list[str]) -> list[str]:
    """Replay the conversation's rewriting so a follow-up sees what was searched before it."""
    queries: list[str] = []
    for message in user_messages:
        queries.append(contextualize(message, queries))
    return queries


def render_answer(answer: Answer) -> list[dict]:
    """The reply as chat messages: the one-line answer, then one collapsible message per source."""
    head = html.escape(answer.text)
    if answer.searched != answer.question:
        head += f"\n\n<small>Searched: <i>{html.escape(answer.searched)}</i></small>"
    if not answer.covered and answer.sources:
        head += "\n\nClosest matches, not answers:"
    messages = [{"role": "assistant", "content": head}]
    for s in answer.sources:
        p = s.hit.passage
        text, cursor, parts = p.text, 0, []
        for a, b in s.highlights:
            parts.append(html.escape(text[cursor:a]))
            parts.append(f"<mark>{html.escape(text[a:b])}</mark>")
            cursor = b
        parts.append(html.escape(text[cursor:]))
        where = " · ".join(html.escape(x) for x in (p.source, p.url) if x)
        body = "".join(parts).replace("\n\n", "<br><br>")
        content = f"{body}" + (f"<br><small>{where}</small>" if where else "")
        messages.append({"role": "assistant", "content": content,
                         "metadata": {"title": html.escape(f"[{s.number}] {s.label}"), "status": "done"}})
    return messages


def make_chat(retriever):
    """The chat function Gradio calls: ``(message, history, k) -> messages``."""
    from qa.pipeline import ask

    def chat(message: str, history: list[dict], k: float = 5):
        if not message or not message.strip():
            return [{"role": "assistant", "content": "Please type a question."}]
        previous = [m["content"] for m in history if m.get("role") == "user" and isinstance(m.get("content"), str)]
        answer = ask(retriever, message, searched_queries(previous), k=int(k))
        return render_answer(answer)

    return chat


def build_ui(retriever):
    import gradio as gr

    counts = retriever.index.store.counts()
    with gr.Blocks(title="News QA") as demo:
        gr.Markdown(f"### Ask the articles\n{counts['articles']} articles, {counts['passages']} passages, "
                    f"model {retriever.index.manifest['model']['name']}")
        k = gr.Slider(1, 10, value=retriever.settings.k, step=1, label="Passages", render=False)
        gr.ChatInterface(make_chat(retriever), additional_inputs=[k], api_name="ask",
                         chatbot=gr.Chatbot(height=520, sanitize_html=True))
    return demo


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 7860, auth=None) -> None:
    """Load the index once and serve the chat until interrupted."""
    from qa.cli import open_retriever

    retriever = open_retriever(settings)
    retriever.encoder.encode(["warm up"])  # load the model now, not on the first question
    build_ui(retriever).launch(server_name=host, server_port=port, auth=auth, show_error=True)


if __name__ == "__main__":
    import sys

    from qa.cli import main

    sys.exit(main(["serve", *sys.argv[1:]]))
