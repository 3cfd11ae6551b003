"""Search: field weights, spellings that meet, vocabulary mined from the library, honest
matching with an empty state, hostile queries, one copy of the same code, and one display
text (title, API, summary) in the CLI, the magic and the server API the panel reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from jupyter_codedistiller.library import Library, SearchResults
from jupyter_codedistiller.server.handlers import result_json
from jupyter_codedistiller.textview import result_lines
from jupyter_codedistiller.titles import clean_title, docstring_title, first_sentence, headline
from jupyter_codedistiller.vocabulary import acronyms, definitions, related

from .conftest import make_snippet


def ids(results: list) -> list[str]:
    return [r.snippet.id for r in results]


def code(name: str, body: str = "") -> str:
    return f"import numpy as np\nvalues = np.arange(10)  # {name}\n{body}"


def test_a_title_or_api_match_outranks_a_mention_in_the_summary(library: Library) -> None:
    mention = library.put(make_snippet(
        "mention", title="Load a table of trial visits",
        summary="The visits are later used for a silhouette plot elsewhere.", code=code("mention")))
    api = make_snippet("api", title="Score how well samples sit in their cluster",
                       summary="Mean intra-cluster distance against the nearest cluster.",
                       code=code("api", "from sklearn.metrics import silhouette_score\n"
                                        "silhouette_score(values.reshape(-1, 1), values % 2)\n"))
    api.api = "sklearn.metrics.silhouette_score"
    api = library.put(api)
    titled = library.put(make_snippet("titled", title="Silhouette of each clustered sample",
                                      summary="Per-sample values.", code=code("titled")))
    found = ids(library.search("silhouette"))
    assert found.index(api.id) < found.index(mention.id)
    assert found.index(titled.id) < found.index(mention.id)


def test_context_prose_is_searched_but_weighs_less(library: Library) -> None:
    prose = make_snippet("prose", title="Adjust p-values", summary="Many tests at once.",
                         code=code("prose"))
    prose.context = "method : fdr_bh is Benjamini/Hochberg, for independent or positively correlated tests"
    prose = library.put(prose)
    assert ids(library.search("benjamini hochberg")) == [prose.id]


def test_hyphenated_joined_and_spaced_spellings_meet(library: Library) -> None:
    joined = library.put(make_snippet(
        "joined", title="Compare two survival curves", summary="",
        code=code("joined", "from lifelines.statistics import logrank_test\n")))
    spaced = library.put(make_snippet("spaced", title="A log-rank comparison of arms", summary="",
                                      code=code("spaced")))
    for query in ("log-rank test", "log rank", "logrank"):
        assert set(ids(library.search(query))) == {joined.id, spaced.id}, query


def test_vocabulary_is_mined_from_the_library_and_expands_queries(library: Library) -> None:
    # Three documents tie "benjamini" to "multipletests"; a fourth uses the function with no
    # word of the method's name: a query naming the method still finds it, fully accounted for.
    for i, (title, summary) in enumerate([
            ("False discovery rate control", "The Benjamini-Hochberg step-up procedure."),
            ("Correct for multiple comparisons", "As Benjamini and Yekutieli propose."),
            ("Many tests at once", "Benjamini's method keeps the expected share of false finds.")]):
        library.put(make_snippet(
            f"fdr{i}", title=title, summary=summary,
            code=code(f"fdr{i}", "from statsmodels.stats.multitest import multipletests\n"
                                 f"multipletests(values / {i + 10})\n")))
    bare = library.put(make_snippet(
        "bare", title="Adjust a list of pvalues", summary="",
        code=code("bare", "from statsmodels.stats.multitest import multipletests\n"
                          "multipletests(values / 10)\n")))
    library.put(make_snippet("other", title="Kaplan-Meier curve", summary="", code=code("other")))
    assert library.related_terms("benjamini") == []  # nothing learnt yet
    assert library.learn_vocabulary() > 0
    # words are kept in their counted form (a plural "s" off), which the index stems alike
    assert "multipletest" in library.related_terms("benjamini")
    assert library.related_terms("Benjamini") == library.related_terms("benjamini")
    results = library.search("benjamini pvalues")
    assert bare.id in ids(results)
    hit = next(r for r in results if r.snippet.id == bare.id)
    assert hit.missing == [] and results.notice is None


def test_related_words_need_company_in_several_documents() -> None:
    docs = [{"alpha", "beta", "noise1"}, {"alpha", "beta", "noise2"}, {"gamma", "noise1"},
            {"gamma", "delta"}]
    learnt = related(docs)
    assert ("beta", 1.0) in learnt["alpha"]
    assert "delta" not in {r for r, _ in learnt.get("gamma", [])}  # together only once


def test_acronyms_are_learnt_from_where_the_library_defines_them() -> None:
    assert list(definitions("The Receiver Operating Characteristic (ROC) curve.")) == [
        ("receiver operating characteristic", "roc")]
    assert list(definitions("Kaplan-Meier (KM) estimate; Support Vector Machines (SVMs).")) == [
        ("kaplan-meier", "km"), ("support vector machines", "svm")]
    assert list(definitions("as in Tarashansky et al. (Tarashansky) and a value (see Notes)")) == []
    df = Counter({"pd": 40, "roc": 2})
    texts = ["Partial Dependence (PD) plots.", "Receiver Operating Characteristic (ROC) curve.",
             "Mean Squared Error (MSE).", "Maximum Spacing Estimation (MSE).",
             "Principal Components Analysis (PCA).", "Principal Component Analysis (PCA)."]
    learnt = acronyms(texts, df, documents=100)
    # pd is in too many documents; mse is defined two ways; a plural is the same phrase
    assert set(learnt) == {"roc", "pca"}
    assert learnt["roc"] == ("receiver", "operating", "characteristic")


def test_an_acronym_and_the_words_it_stands_for_meet(library: Library) -> None:
    # One document defines the acronym; another uses only the acronym, a third only the words.
    library.put(make_snippet("define", title="Support vector machines",
                             summary="Support Vector Machines (SVMs) are supervised learning methods.",
                             code=code("define")))
    short = library.put(make_snippet("short", title="Maximum margin hyperplane of an SVM", summary="",
                                     code=code("short")))
    spelt = library.put(make_snippet("spelt", title="Nu support vector classification",
                                     summary="A support vector machine with a bound on errors.",
                                     code=code("spelt")))
    assert short.id not in ids(library.search("support vector machine"))  # nothing learnt yet
    library.learn_vocabulary()
    found = library.search("support vector machine margin")
    assert ids(found)[0] == short.id and found[0].missing == []
    assert spelt.id in ids(library.search("svm bound errors"))
    assert library.search("svm bound errors")[0].missing == []


def test_nothing_matches_says_so_and_shows_the_closest(library: Library) -> None:
    km = library.put(make_snippet("km"))
    lone = library.search("zzqx")
    assert isinstance(lone, SearchResults) and list(lone) == []
    assert lone.notice == "no snippet matches 'zzqx'"
    closest = library.search("zzqx nonexistent kaplan")
    assert closest.notice == "no snippet matches 'zzqx nonexistent'; closest:"
    assert ids(closest) == [km.id] and closest[0].missing == ["zzqx", "nonexistent"]
    assert library.search("kaplan").notice is None


def test_every_meaningful_word_counts_and_partial_matches_are_marked(library: Library) -> None:
    km = library.put(make_snippet("km", title="Kaplan-Meier estimate of the survival function",
                                  summary="Fit durations and events."))
    grouped = library.put(make_snippet("grouped", title="Survival per group of patients",
                                       summary="Split a cohort and compare.", code=code("grouped")))
    results = library.search("kaplan meier by group")
    assert results.notice == "no snippet matches all of 'kaplan meier group'; closest:"
    assert ids(results)[0] == km.id and results[0].missing == ["group"]
    assert grouped.id in ids(results)
    assert next(r for r in results if r.snippet.id == grouped.id).missing == ["kaplan", "meier"]


def test_the_same_code_from_two_sources_appears_once(library: Library) -> None:
    a = make_snippet("pkg")
    b = make_snippet("repo", code=a.code)
    b.source.source_id = "other-source"
    library.put(a)
    library.put(b)
    assert len(library.search("kaplan")) == 1
    assert len(library.search("")) == 1


HOSTILE = ['"', '"unbalanced', "NEAR(cox hazard)", "cox AND", "OR", "NOT kaplan", "kaplan*",
           "title:kaplan", "{title summary}: x", "^kaplan", "C++", "🧬 gene", "🧬", "-x", "--x",
           "a" * 5000, "kaplan " * 200, "'; DROP TABLE snippets; --", "\x00", "log-rank-", "- -"]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_queries_are_only_words(library: Library, query: str) -> None:
    library.put(make_snippet("km"))
    results = library.search(query, limit=5)
    assert isinstance(results, SearchResults) and len(results) <= 5
    assert library.count() == 1


def test_hostile_query_after_double_dash_on_the_cli(library: Library) -> None:
    library.put(make_snippet("km"))
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-m", "jupyter_codedistiller.cli", "search", "--", "-x", "kaplan"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Kaplan-Meier fit by treatment group" in out.stdout


def test_titles_are_first_sentences_whole_never_directives() -> None:
    assert first_sentence("Fit the model. Then plot it.") == ("Fit the model.", "Then plot it.")
    assert first_sentence("Compute e.g. the mean of x. More.")[0] == "Compute e.g. the mean of x."
    assert clean_title(".. currentmodule:: lifelines") == ""
    assert clean_title(".. _survival-ref:\nSurvival curves") == "Survival curves"
    assert docstring_title("fit", "Fit.") == ("fit: Fit.", "")
    title, rest = docstring_title(
        "KaplanMeierFitter",
        "Class for fitting the Kaplan-Meier estimate for the survival function.\nParameters follow.")
    assert title == "Class for fitting the Kaplan-Meier estimate for the survival function."
    assert rest == "Parameters follow."


def test_headline_of_an_old_record_drops_the_name_and_the_repeated_summary() -> None:
    s = make_snippet("old", title="restricted_mean_survival_time: Compute the restricted mean survival time",
                     summary="Compute the restricted mean survival time")
    head = headline(s)
    assert head.title == "Compute the restricted mean survival time"
    assert head.api == "restricted_mean_survival_time"
    assert head.summary == ""
    s = make_snippet("label", title=".. _km-ref:", summary="Kaplan-Meier curves per arm.")
    s.api = "lifelines.KaplanMeierFitter"
    assert headline(s).title == "lifelines.KaplanMeierFitter"


@pytest.fixture
def shell() -> Iterator[InteractiveShell]:
    ipython = InteractiveShell.instance()
    ipython.extension_manager.load_extension("jupyter_codedistiller")
    ipython.magics_manager.registry["DistillMagics"].widgets = "off"
    yield ipython


def test_cli_magic_and_api_show_the_same_title_api_and_summary(
        library: Library, shell: InteractiveShell) -> None:
    s = make_snippet("km", title="KaplanMeierFitter: Class for fitting the Kaplan-Meier estimate.",
                     summary="Class for fitting the Kaplan-Meier estimate. Durations and events.")
    s.api = "lifelines.KaplanMeierFitter"
    library.put(s)
    head = headline(library.get(s.id))
    assert head.title == "Class for fitting the Kaplan-Meier estimate."
    assert head.summary == "Durations and events."

    cli = subprocess.run([sys.executable, "-m", "jupyter_codedistiller.cli", "search", "kaplan"],
                         capture_output=True, text=True, env=dict(os.environ), timeout=60)
    lines = cli.stdout.splitlines()
    assert lines[0].startswith(f"  1. {head.title}  ·  lifelines")
    assert lines[1].strip() == head.api and lines[2].strip() == head.summary

    with capture_output() as cap:
        shell.run_line_magic("distill", "search kaplan")
    bundle = cap.outputs[-1].data
    assert bundle["text/plain"].splitlines()[:3] == lines[:3]
    assert f"<b>{head.title}</b>" in bundle["text/html"]
    assert f"<code>{head.api}</code>" in bundle["text/html"]

    api = result_json(library.search("kaplan")[0])  # what the panel is sent and shows
    assert api["headline"] == {"title": head.title, "api": head.api, "summary": head.summary}
    assert json.loads(json.dumps(api))["headline"]["title"] == head.title
    assert result_lines(library.search("kaplan"))[:3] == lines[:3]


def _concept(text: str) -> list[float]:
    """A toy embedding model: texts about cohorts point one way, everything else another."""
    return [1.0, 0.1] if "cohort" in text.lower() else [0.1, 1.0]


def test_embeddings_rerank_by_meaning_only_when_configured(library: Library, home, monkeypatch) -> None:
    from jupyter_codedistiller import embeddings
    from jupyter_codedistiller.settings import set_setting

    from .openai_stub import OpenAIStub

    strong = library.put(make_snippet("strong", title="Kaplan-Meier curve", summary="Kaplan-Meier curve.",
                                      code=code("strong")))
    cohort = library.put(make_snippet("cohort", title="Kaplan-Meier per cohort", summary="One curve each.",
                                      code=code("cohort")))
    lexical = ids(library.search("kaplan curve for every study group"))
    assert lexical[0] == strong.id  # words alone prefer the one that repeats them
    with OpenAIStub() as stub:
        stub.embed_with = _concept
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
        assert embeddings.embedder_for(home) is None  # no model configured: not used
        set_setting(home, "embedding_model", "stub-embed")
        embedder = embeddings.embedder_for(home)
        assert library.embed_missing(embedder) == 2
        assert library.embed_missing(embedder) == 0  # kept in the library, per code revision
        # the model reads "study group" as being about cohorts; the words do not say so
        stub.embed_with = lambda t: _concept(t.replace("study group", "cohort"))
        reranked = ids(library.search("kaplan curve for every study group"))
        assert reranked[0] == cohort.id
        calls = [r for r in stub.requests if r.path.rstrip("/") == "/v1/embeddings"]
        assert calls[-1].body["model"] == "stub-embed" and calls[-1].body["input"] == [
            "kaplan curve for every study group"]
        stub.embed_with = None  # the endpoint breaks: search stays lexical and answers
        assert ids(library.search("kaplan curve for every other group"))[0] == strong.id


def test_a_docstring_example_is_found_by_its_parameters_and_prose() -> None:
    from jupyter_codedistiller.distill.extract import extract_file

    source = '''
class Fitter:
    """Fit survival curves.

    Parameters
    ----------
    alpha : float
        The confidence level of the bands.

    Examples
    --------
    >>> Fitter(alpha=0.1).fit([1, 2])
    """

    def __init__(self, alpha=0.05, *, ci_labels=None):
        self.alpha = alpha

    def fit(self, durations):
        return self
'''
    (found,) = extract_file("survkit/fitters.py", source.encode()).candidates
    assert found.api == "survkit.fitters.Fitter"
    assert found.context.startswith("Parameters: alpha ci_labels.")
    assert "confidence level of the bands" in found.context
    assert "Fitter(alpha=0.1)" not in found.context  # the example is code, not prose


def test_a_full_match_is_never_hidden_by_a_partial_one(library: Library) -> None:
    partial = library.put(make_snippet("partial", title="Expression values per cell, expression atlas",
                                       summary="Expression, expression.", code=code("partial")))
    full = make_snippet("full", title="Rank genes between groups", summary="", code=code("full"))
    full.context = "Tests for differential expression between two groups of cells."
    full = library.put(full)
    results = library.search("differential expression")
    assert ids(results)[:2] == [full.id, partial.id]
    assert results[0].missing == [] and results[1].missing == ["differential"]
    assert results.notice is None


def test_a_partial_match_holding_most_words_is_found_among_common_ones(
        library: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    # One snippet holds three of the four words; many later ones hold only the common two. Asking
    # for any word would rank among the most recent matches of the common words and miss it.
    import jupyter_codedistiller.library as store

    monkeypatch.setattr(store, "SCAN_CAP", 10)
    target = library.put(make_snippet("target", title="Structured array from event indicator and time",
                                      summary="Right-censored observations.", code=code("target")))
    for i in range(30):
        library.put(make_snippet(f"common{i}", title=f"Time array number {i}", summary="Values over time.",
                                 code=code(f"common{i}")))
    results = library.search("censored event time array outcome")
    assert results.notice == "no snippet matches 'outcome'; closest:"
    assert ids(results)[0] == target.id and results[0].missing == ["outcome"]


def test_a_partial_match_counts_by_the_share_of_the_question_it_holds(library: Library) -> None:
    # One rare word in a title does not outrank a snippet holding three of the four words, even
    # when those three are common in the library (each says less than the rare one).
    rare = library.put(make_snippet("rare", title="Bulk data of patients", summary="", code=code("rare")))
    most = library.put(make_snippet("most", title="Aggregate the mean of each group", summary="",
                                    code=code("most")))
    for i in range(2):
        library.put(make_snippet(f"filler{i}", title=f"Mean of group {i}", summary="Aggregate values.",
                                 code=code(f"filler{i}")))
    found = ids(library.search("group aggregate mean patient", limit=20))
    assert found.index(most.id) < found.index(rare.id)


@pytest.mark.parametrize(("query", "title"), [
    ("normalise counts", "Normalize the counts per cell"),
    ("normalization of counts", "Normalised counts per cell"),
    ("tumour size", "Tumor size by stage"),
    ("analyse the colour", "Analyze the color of each well"),
    ("centre each column", "Center the columns"),
    ("haemoglobin levels", "Hemoglobin levels of each patient"),
    ("grouped counts", "Counts of each group"),
])
def test_british_and_american_spellings_and_word_forms_meet(library: Library, query: str, title: str) -> None:
    hit = library.put(make_snippet("hit", title=title, summary="", code=code("hit")))
    library.put(make_snippet("other", title="Plot a histogram", summary="", code=code("other")))
    results = library.search(query)
    assert ids(results) == [hit.id] and results.notice is None, query


def test_spelling_rules_are_alike_for_index_and_query_and_leave_other_words() -> None:
    from jupyter_codedistiller.textindex import american, query_terms

    assert american("x_normalise_counts, Behaviour; centres") == "x_normalize_counts, Behavior; centers"
    for word in ("contour", "hour", "your", "four", "genre", "analyses", "does", "shoe", "aerobic", "mae"):
        assert american(word) == word
    assert query_terms("Normalise the tumours") == ["normalize", "tumors"]


def test_a_word_and_the_short_word_after_it_meet_their_joined_spelling(library: Library) -> None:
    joined = library.put(make_snippet("joined", title="Mean per patient", summary="",
                                      code=code("joined", "import pandas as pd\n"
                                                          "pd.DataFrame({'g': [1]}).groupby('g').mean()\n")))
    spaced = library.put(make_snippet("spaced", title="Split by patient", summary="Group by a column.",
                                      code=code("spaced")))
    for query in ("group by patient", "groupby patient"):
        results = library.search(query)
        assert set(ids(results)) == {joined.id, spaced.id}, query
        assert results.notice is None and all(not r.missing for r in results), query


def test_numbers_and_generated_names_are_not_vocabulary() -> None:
    from jupyter_codedistiller.vocabulary import words

    docs = [{"alpha", "x1", "df2", "1e5", "result1", "gbsg2"}, {"alpha", "x1", "df2", "1e5", "result2", "gbsg2"},
            {"beta", "result3"}]
    learnt = related(docs)
    assert {r for r, _ in learnt["alpha"]} == {"gbsg2"}  # a name with one number is a name
    assert words("x1 = df2.fit(1e5); tumour") == {"fit", "tumour"}


def test_one_method_documented_alike_on_several_classes_is_one_piece_of_evidence(library: Library) -> None:
    # Three classes carry the same docstring (one title), which mentions "coolwarm" and "outcome"
    # together: that is one document, not three, so the two words do not become related.
    for i in range(3):
        same = make_snippet(f"same{i}", title="Plot partial effects on the outcome",
                            summary="Colours by coolwarm.", code=code(f"same{i}", f"Fitter{i}()\n"))
        same.api = f"lifelines.Fitter{i}.plot_partial_effects_on_outcome"
        library.put(same)
    for i in range(2):
        library.put(make_snippet(f"fdr{i}", title=f"Correct p-values, way {i}", summary="Benjamini-Hochberg.",
                                 code=code(f"fdr{i}", "multipletests(values, method='fdr_bh')\n")))
    library.learn_vocabulary()
    assert "coolwarm" not in library.related_terms("outcome")
    assert "benjamini" in library.related_terms("fdr")


def test_the_cells_of_one_file_are_one_piece_of_evidence(library: Library) -> None:
    # Three cells of one notebook share its prose ("walton", "cohort"): one document, so the two
    # words do not become related. Two files that each use them do relate them.
    for i in range(3):
        cell = make_snippet(f"cell{i}", title=f"Step {i} of the walkthrough",
                            summary="The walton cohort, again.", code=code(f"cell{i}", f"step{i}()\n"))
        cell.source.path = "docs/walkthrough.ipynb"
        library.put(cell)
    library.learn_vocabulary()
    assert "cohort" not in library.related_terms("walton")
    for i in range(2):
        library.put(make_snippet(f"file{i}", title=f"Another analysis {i}", summary="The walton cohort.",
                                 code=code(f"file{i}", f"other{i}()\n")))
    library.learn_vocabulary()
    assert "cohort" in library.related_terms("walton")


def test_pages_of_any_size_list_one_ranking(library: Library) -> None:
    # Full matches, matches by a longer word, partial matches and the closest ones, of many
    # lengths: a page of 5, the CLI's 10, the panel's 20 (asked as 21) and one long list all
    # rank them alike, with no snippet on two pages.
    import random

    rng = random.Random(7)
    words = ["survival", "curve", "curves", "cohort", "kaplan", "hazard", "group", "plot", "arm"]
    for i in range(90):
        title = " ".join(rng.sample(words, rng.randint(1, 4)))
        summary = " ".join(rng.choice(words + ["the", "each", "value"]) for _ in range(rng.randint(0, 12)))
        library.put(make_snippet(f"s{i}", title=f"{title} {i}", summary=summary, code=code(f"s{i}")))
    for query in ("survival curve", "survival curve cohort", "survival curve cohort zzqx", "kaplan arm"):
        whole = ids(library.search(query, limit=200))
        assert len(whole) == len(set(whole)) and whole
        for size in (5, 10, 21):
            paged = []
            for offset in range(0, len(whole) + size, size):
                paged += ids(library.search(query, limit=size, offset=offset))
            assert paged == whole, (query, size)
    # What was ranked for the next page is forgotten when the library changes.
    assert ids(library.search("kaplan arm", limit=5, offset=5))
    new = library.put(make_snippet("new", title="Kaplan arm", summary="Kaplan arm.", code=code("new")))
    assert ids(library.search("kaplan arm", limit=5))[0] == new.id
    other = Library(library.path)  # a write by another connection is seen too
    other.put(make_snippet("newer", title="Kaplan arm kaplan", summary="Kaplan arm arm.", code=code("newer")))
    assert library.get(ids(library.search("kaplan arm", limit=3))[0]).title == "Kaplan arm kaplan"
