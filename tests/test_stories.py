"""One story per wire copy: a test set built from the seed, and the grouping measured on it.

Copies: the seed report as other outlets would run it (re-titled, re-dated, trimmed, lightly
edited, with a dateline or a closing line, paragraphs swapped). Distinct articles: reports
on the same events written separately (for this test), sharing the names, places and a
quoted sentence, which must stay apart. The grouping is run through ``update_index``, as
in use, and scored over every pair of articles.
"""

from __future__ import annotations

import itertools
import re

import pytest

from embeddings.articles import load_articles
from embeddings.indexer import update_index
from embeddings.store import Store
from tests.conftest import SEED


def seed_paragraphs() -> list[str]:
    body = load_articles(SEED)[0].body
    return [p for p in body.split("\n\n") if p.strip()]


def edit(text: str) -> str:
    """Light copy-editing as another desk would do it."""
    for a, b in [("announced Tuesday", "said on Tuesday"), ("jihadi group", "group"), ("U.S.", "US"),
                 ("said later", "later said"), ("dozens of", "several dozen"), ("“", '"'), ("”", '"'),
                 ("large parts", "much"), ("Defence", "Defense")]:
        text = text.replace(a, b)
    return text


def copies() -> dict[str, str]:
    p = seed_paragraphs()
    n = len(p)
    return {
        "retitled": "title: US-backed force starts final push against IS in Syria\ndate: 2018-05-02\n"
                    "source: Gazette A\n\n" + "\n\n".join(p),
        "redated": "title: Final stage of battle against IS begins\ndate: 2018-05-03\nsource: Daily B\n\n"
                   + "\n\n".join(p),
        "trimmed-70": "title: SDF launches last stage of anti-IS campaign\ndate: 2018-05-02\nsource: Courier C\n\n"
                      + "\n\n".join(p[: round(n * 0.7)]),
        "trimmed-50": "title: Kurdish-led alliance begins final IS offensive\ndate: 2018-05-02\nsource: Post D\n\n"
                      + "\n\n".join(p[: round(n * 0.5)]),
        "edited": "title: Offensive to oust IS from eastern Syria\ndate: 2018-05-02\nsource: Herald E\n\n"
                  + "\n\n".join(edit(x) for x in p),
        "dateline": "title: Syria: SDF begins final stage\ndate: 2018-05-02\nsource: Times F\n\n"
                    "BEIRUT (Wire) — " + "\n\n".join(edit(x) for x in p[:-2])
                    + "\n\nCopyright 2018 The Wire. All rights reserved. This material may not be republished.",
        "swapped": "title: Final phase against IS\ndate: 2018-05-02\nsource: Journal G\n\n"
                   + "\n\n".join(p[:3] + [p[4], p[3]] + p[5:-1]),
        "local-angle": "title: Coalition backs Syria offensive\ndate: 2018-05-04\nsource: Chronicle H\n\n"
                       + "\n\n".join(p) + "\n\nLocal veterans' groups said they were following the operation "
                       "closely and hoped it would bring the conflict to an end before the summer.",
    }


DISTINCT = {
    "analysis": """title: Why the last IS pockets in Syria will be hard to take
date: 2018-05-05
source: Review J

Military analysts say the remaining Islamic State positions along the Euphrates are small but well dug in, with tunnels and mines laid over four years.

The Syrian Democratic Forces have the numbers, but their fighters have been stretched thin by months of operations further north, and many of the Arab tribes in Deir el-Zour remain wary of a Kurdish-led force.

Coalition air power will matter most in the open desert near the Iraqi border, where the group's fighters can move between villages at night.

“Our forces will liberate these areas and secure the Iraqi border once and for all,” the military council announced, a promise analysts say will be tested by the terrain.

Officials in Washington have declined to say how long the operation is expected to last.""",
    "regime": """title: Government troops press IS in Damascus suburbs
date: 2018-05-02
source: Agency K

Syrian government forces backed by Russian jets pounded Islamic State positions in the Yarmuk camp and the Hajar al-Aswad district south of Damascus on Wednesday.

State media said troops had advanced several hundred metres through narrow streets, while monitors reported heavy civilian displacement.

The fighting in the capital's south is separate from the Kurdish-led push in the east of the country, where the US-led coalition supports the Syrian Democratic Forces.

The government aims to secure the whole of Damascus for the first time since 2012.""",
    "iraq": """title: Iraqi forces strike IS targets across the border
date: 2018-05-03
source: Bulletin L

Iraqi aircraft struck Islamic State positions inside Syria near the border town of Hajin, the Iraqi military said, in coordination with the US-led coalition.

Baghdad has been worried that fighters pushed out of Deir el-Zour province could slip back into Anbar.

The strikes came a day after the Syrian Democratic Forces said they had begun the final stage of their campaign against the group in eastern Syria.

An Iraqi commander said a shared operations room with Syrian Kurdish forces was helping avoid mistakes.""",
    "refugees": """title: Aid groups brace for new displacement in Deir el-Zour
date: 2018-05-06
source: Weekly M

Humanitarian organisations said they were preparing for thousands of families to flee villages along the Euphrates as the offensive against the Islamic State intensifies.

Camps near Hassakeh are already crowded, and aid workers say winter supplies have not been replaced.

The United Nations asked all parties to allow civilians safe passage and to spare water stations and clinics.

Local councils backed by the Syrian Democratic Forces said they would open new reception points north of the river.""",
    "profile": """title: Who is Ahmed Abu Khawla?
date: 2018-05-07
source: Magazine N

Ahmed Abu Khawla, head of the Deir el-Zour Military Council, is a former tribal fighter who joined the Kurdish-led alliance in 2016.

His council, made up mostly of Arab fighters from the province, has become the public face of the offensive against the Islamic State in the east.

Supporters credit him with keeping tribal leaders on side; critics accuse his men of abuses in captured villages, charges he denies.

He has said there is a “shared operations room with Iraqi forces” and that the border will soon be secured.""",
    "french": """title: French special forces deployment confirmed
date: 2018-04-27
source: Daily P

France has sent special operations forces to northern and eastern Syria to support the fight against the Islamic State, US Defence Secretary Jim Mattis told lawmakers on Thursday.

Paris has not commented on numbers, but officials said the deployment was small and focused on training and advising local partners.

The announcement came as Washington weighed how long American troops would stay in Syria once the group is defeated.

President Emmanuel Macron has said France would remain committed to the coalition for as long as needed.""",
}


def pair_scores(stories: dict[str, str], family: set[str]) -> tuple[float, float, int, int]:
    """Precision and recall of "same story" over every pair; the pair counts (same, apart)."""
    names = sorted(stories)
    tp = fp = fn = 0
    for a, b in itertools.combinations(names, 2):
        truth = a in family and b in family
        said = stories[a] == stories[b]
        tp += truth and said
        fp += said and not truth
        fn += truth and not said
    positives = tp + fn
    negatives = len(names) * (len(names) - 1) // 2 - positives
    return tp / max(1, tp + fp), tp / max(1, positives), positives, negatives


def test_wire_copies_are_one_story_and_distinct_reports_stay_apart(tmp_path, index_settings, fake_encoder, capsys):
    folder = tmp_path / "news"
    folder.mkdir()
    (folder / "seed.txt").write_bytes(SEED.read_bytes())
    for name, text in {**copies(), **DISTINCT}.items():
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    update_index([folder], index_settings, fake_encoder)
    with Store(index_settings.index_dir / "store.sqlite", snapshot=True) as store:
        rows = store.conn.execute("SELECT a.path, s.story FROM articles a JOIN stories s ON s.article_id = a.id")
        stories = {re.sub(r"\.txt$", "", path.rsplit("/", 1)[-1]): story for path, story in rows}
    assert len(stories) == 1 + len(copies()) + len(DISTINCT)
    family = {"seed", *copies()}
    precision, recall, same, apart = pair_scores(stories, family)
    with capsys.disabled():
        print(f"\nwire-copy grouping: precision {precision:.3f}, recall {recall:.3f} "
              f"over {same} same-story and {apart} different-story pairs")
    assert precision >= 0.95 and recall >= 0.9


def test_grouping_is_incremental_and_survives_a_rebuild(tmp_path, index_settings, fake_encoder):
    folder = tmp_path / "news"
    folder.mkdir()
    (folder / "seed.txt").write_bytes(SEED.read_bytes())
    (folder / "analysis.txt").write_text(DISTINCT["analysis"], encoding="utf-8")
    update_index([folder], index_settings, fake_encoder)
    (folder / "edited.txt").write_text(copies()["edited"], encoding="utf-8")  # arrives later
    update_index([folder], index_settings, fake_encoder)

    def grouping():
        with Store(index_settings.index_dir / "store.sqlite", snapshot=True) as store:
            rows = dict(store.conn.execute("SELECT a.path, s.story FROM articles a JOIN stories s "
                                           "ON s.article_id = a.id").fetchall())
        by_name = {path.rsplit("/", 1)[-1]: story for path, story in rows.items()}
        return by_name["seed.txt"] == by_name["edited.txt"], by_name["seed.txt"] != by_name["analysis.txt"]

    assert grouping() == (True, True)
    update_index([], index_settings, fake_encoder, rebuild=True)
    assert grouping() == (True, True)
    (folder / "seed.txt").unlink()  # the first copy goes; the later one keeps its story
    update_index([folder], index_settings, fake_encoder)


@pytest.mark.model
def test_an_answer_cites_a_story_once_and_lists_its_other_outlets(tmp_path, real_encoder):
    from embeddings.settings import IndexSettings
    from qa.pipeline import ask
    from qa.retrieve import Retriever
    from qa.settings import Settings

    folder = tmp_path / "news"
    folder.mkdir()
    (folder / "seed.txt").write_bytes(SEED.read_bytes())
    for name in ("redated", "edited", "trimmed-70"):
        (folder / f"{name}.txt").write_text(copies()[name], encoding="utf-8")
    for name, text in DISTINCT.items():
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    settings = Settings(index=IndexSettings(index_dir=tmp_path / "index"))
    encoder = real_encoder
    update_index([folder], settings.index, encoder)
    from embeddings.reader import open_index

    index = open_index(settings.index, encoder.identity, encoder.dimension)
    answer = ask(Retriever(index, encoder, settings), "Who heads the Deir el-Zour Military Council?", k=5,
                 as_of="2018-05-08")
    articles = [s.hit.passage.article_id for s in answer.sources]
    stories = [s.hit.passage.story for s in answer.sources]
    story_articles = {}
    for article, story in zip(articles, stories):
        story_articles.setdefault(story, set()).add(article)
    assert all(len(a) == 1 for a in story_articles.values()), "a story cited from two copies"
    wire = next(s for s in answer.sources if len(s.hit.also) == 3)
    assert sorted(m.source or "" for m in wire.hit.also if m.source) == sorted(
        {"Daily B", "Herald E", "Courier C"} - {wire.hit.passage.source})
    assert answer.to_dict()["sources"][answer.sources.index(wire)]["also_published_by"]
    index.close()


def test_the_bands_are_those_datasketch_chooses_for_the_threshold():
    from datasketch import MinHashLSH

    from embeddings.stories import BAND_RANGES, LSH_THRESHOLD, PERMUTATIONS

    assert list(BAND_RANGES) == MinHashLSH(threshold=LSH_THRESHOLD, num_perm=PERMUTATIONS).hashranges
