"""Extractive QA (issue 17): doc-stride windows cover the context, an answer cut by a window edge is found
whole in the next window, predicted spans are exact substrings, null answers, clear errors on bad input,
the official SQuAD v1.1 metric (the official script's logic written here as the reference) on hand cases
and a full predictions file, and the twin: transformers' QuestionAnsweringPipeline on the same weights
(a tiny random model converted with bertcourse.convert.hf) gives the same answers, offsets and scores."""

import collections
import json
import os
import re
import string
import sys

import keras
import numpy as np
import pytest

from bertcourse import BertConfig
from bertcourse.data.squad import QAExample, SquadAnswer, read_squad, split_articles, squad_path
from bertcourse.errors import ModelInputError
from bertcourse.models import BertBackbone
from bertcourse.pipelines import pipeline
from bertcourse.tasks import TASKS
from bertcourse.tasks.question_answering import (BertQuestionAnswerer, QuestionAnsweringPipeline, _decode_spans,
                                                 best_null_threshold, decode_answers, exact_match, f1_score, lexical_baseline,
                                                 normalize_answer, qa_features, qa_training_features,
                                                 question_type, save_hf_question_answerer, squad_metrics)
from bertcourse.text import BertPreprocessor, bert_uncased_vocab_path

SEQ = 96


@pytest.fixture(scope="module")
def dev():
    return read_squad(squad_path("dev-v1.1.json"))


@pytest.fixture(scope="module")
def held(dev):
    return split_articles(dev)[1].examples()


@pytest.fixture(scope="module")
def qa():
    """A tiny random model on the real uncased vocabulary; the span head's weights are scaled up so the
    start/end scores are peaked (no near-ties between candidates for float round-off to reorder)."""
    keras.utils.set_random_seed(0)
    pre = BertPreprocessor.from_vocab_file(bert_uncased_vocab_path(), sequence_length=SEQ, truncation="only_second")
    cfg = BertConfig(vocab_size=30522, num_layers=2, hidden_size=32, num_heads=2, intermediate_size=64,
                     max_position_embeddings=128)
    model = BertQuestionAnswerer(BertBackbone(cfg), preprocessor=pre, doc_stride=32, max_answer_len=10)
    model.span_dense.kernel.assign(np.random.RandomState(0).normal(0, 2.0, (32, 2)).astype("float32"))
    return model


# ----------------------------------------------------------------------------- windows
def test_windows_cover_the_whole_context_and_share_doc_stride_tokens(qa, held):
    ex = max(held[:200], key=lambda e: len(e.context))
    f = qa.features(ex.question, ex.context)
    n = len(f.offsets[0])
    assert len(f) >= 3 and f.spans[0][0] == 0 and f.spans[-1][1] == n
    covered = set()
    for (a, b), (a2, _) in zip(f.spans, f.spans[1:] + [(None, None)]):
        covered |= set(range(a, b))
        if a2 is not None:
            assert b - a2 == 32   # doc_stride: tokens shared by consecutive windows (Hugging Face's meaning)
    assert covered == set(range(n))
    # each window is [CLS] question [SEP] context[a:b] [SEP], padded; segment 1 on the context part
    ids, seg, mask = (f.inputs[k] for k in ("token_ids", "segment_ids", "padding_mask"))
    pre = qa.preprocessor
    first = {k: np.asarray(v) for k, v in pre((ex.question, ex.context)).items()}
    assert pre.truncation == "only_second"
    np.testing.assert_array_equal(ids[0], first["token_ids"])
    np.testing.assert_array_equal(seg[0], first["segment_ids"])
    for w, (a, b) in enumerate(f.spans):
        c0 = f.context_start[w]
        assert ids[w, 0] == pre.cls_id and ids[w, c0 - 1] == pre.sep_id and ids[w, c0 + b - a] == pre.sep_id
        assert seg[w, c0:c0 + b - a + 1].all() and not seg[w, :c0].any() and mask[w].sum() == c0 + b - a + 1
    # the offsets are the context's characters
    text = ex.context
    assert all(0 <= s < e <= len(text) for s, e in f.offsets[0])


def test_questions_sharing_a_context_get_the_windows_they_get_alone(qa, held):
    """A context asked several questions is tokenized once per call: the windows, offsets and word
    starts are those of each pair on its own, in the input order, interleaved with other contexts."""
    examples = held[:12] + held[:3]                      # consecutive SQuAD questions share paragraphs
    assert len({e.context for e in examples}) < len(examples)
    together = qa.features([e.question for e in examples], [e.context for e in examples])
    for i, ex in enumerate(examples):
        alone = qa.features(ex.question, ex.context)
        windows = together.windows_of(i)
        for key in ("token_ids", "segment_ids", "padding_mask"):
            np.testing.assert_array_equal(together.inputs[key][windows], alone.inputs[key])
        np.testing.assert_array_equal(together.offsets[i], alone.offsets[0])
        np.testing.assert_array_equal(together.word_start[i], alone.word_start[0])
        assert [together.spans[w] for w in windows] == alone.spans and together.contexts[i] == ex.context


def test_an_answer_across_a_window_edge_is_found_in_the_window_where_it_is_whole(qa):
    context = " ".join(f"w{i}" for i in range(60))          # "w0 w1 ...": every word its own tokens
    # find the first window's last context token, and put an answer across that edge
    f = qa.features("which words?", context)
    (a0, b0), (a1, b1) = f.spans[0], f.spans[1]
    offs = f.offsets[0]
    s_char, e_char = int(offs[b0 - 2, 0]), int(offs[b0 + 1, 1])   # 2 tokens before the edge, 2 after
    ex = QAExample("edge", "which words?", context, (SquadAnswer(context[s_char:e_char], s_char),))
    tf_, starts, ends = qa_training_features(qa.preprocessor, [ex], doc_stride=qa.doc_stride)
    assert starts[0] == ends[0] == 0                          # cut by window 0's edge: "no answer here"
    assert starts[1] > 0 and ends[1] >= starts[1]
    # logits that point at the labelled tokens decode to exactly the gold text, from window 1
    start = np.full(tf_.inputs["token_ids"].shape, -5.0, np.float32)
    end = start.copy()
    start[np.arange(len(tf_)), starts] = 10.0
    end[np.arange(len(tf_)), ends] = 10.0
    (answers, null), = decode_answers(tf_, start, end, max_answer_len=15)
    assert answers[0]["answer"] == ex.answers[0].text
    assert (answers[0]["start"], answers[0]["end"]) == (s_char, e_char)
    # with the max-context rule the same span comes from its best window too
    (answers_mc, _), = decode_answers(tf_, start, end, max_answer_len=15, max_context=True)
    assert answers_mc[0]["answer"] == ex.answers[0].text


def test_training_labels_point_at_the_gold_answer(qa, held):
    examples = held[:40]
    f, starts, ends = qa_training_features(qa.preprocessor, examples, doc_stride=32)
    vocab = qa.preprocessor.tokenizer.get_vocabulary()
    found = set()
    for w in np.flatnonzero(starts):
        i, (a, _) = f.example[w], f.spans[w]
        c0 = f.context_start[w]
        s, e = starts[w] - c0 + a, ends[w] - c0 + a
        text = examples[i].context[f.offsets[i][s, 0]:f.offsets[i][e, 1]]
        assert normalize_answer(text) == normalize_answer(examples[i].answers[0].text), (text, vocab[0])
        found.add(i)
    assert len(found) == len(examples)   # every answer is whole in some window


# ----------------------------------------------------------------------------- decoding
def test_spans_are_exact_substrings_of_the_context(qa, held):
    unicode_context = "Der Café Müller in Zürich öffnete 1925; its owner — Élodie Faure — sold it in 1970."
    pipe = QuestionAnsweringPipeline(qa)
    items = [(e.question, e.context) for e in held[:12]] + [("Who owned the café?", unicode_context)]
    results = pipe(question=[q for q, _ in items], context=[c for _, c in items], top_k=5)
    for (_, context), answers in zip(items, results):
        assert 1 <= len(answers) <= 5
        assert [a["score"] for a in answers] == sorted((a["score"] for a in answers), reverse=True)
        for a in answers:
            assert context[a["start"]:a["end"]] == a["answer"] and a["answer"].strip() == a["answer"]
            assert a["answer"] and 0 < a["score"] <= 1


def test_pipeline_outputs_have_hugging_face_shapes(qa):
    assert TASKS["question-answering"] is QuestionAnsweringPipeline
    pipe = pipeline("question-answering", model=qa)
    one = pipe(question="Where is Bath?", context="Bath is a city in Somerset, England.")
    assert isinstance(one, dict) and sorted(one) == ["answer", "end", "score", "start"]
    two = pipe(question=["Where is Bath?", "What is Bath?"], context="Bath is a city in Somerset, England.")
    assert isinstance(two, list) and len(two) == 2 and all(isinstance(x, dict) for x in two)
    as_dicts = pipe([{"question": "Where is Bath?", "context": "Bath is a city in Somerset, England."}])
    assert as_dicts == [one]
    k3 = pipe(question="Where is Bath?", context="Bath is a city in Somerset, England.", top_k=3)
    assert isinstance(k3, list) and len(k3) == 3 and k3[0] == one


def test_length_ordered_windows_give_the_same_logits_and_answers(qa, held, monkeypatch):
    """The pipeline runs a call's windows shortest first (less padding); logits come back in window
    order, equal to the input-order batches up to float32 rounding, and the answers are the same."""
    items = held[:40]
    questions, contexts = [e.question for e in items], [e.context for e in items]
    f = qa.features(questions, contexts)
    lengths = f.inputs["padding_mask"].sum(axis=1)
    assert len(set(lengths.tolist())) > 10          # real paragraphs: windows of many lengths
    positions = []                                  # token positions the model computes, per mode
    forward = qa.predict_on_batch
    monkeypatch.setattr(qa, "predict_on_batch", lambda x: positions.append(x["token_ids"].size) or forward(x))
    grouped = qa.window_logits(f, batch_size=8, group_by_length=True)
    computed_grouped, positions[:] = sum(positions), []
    ordered = qa.window_logits(f, batch_size=8, group_by_length=False)
    assert lengths.sum() <= computed_grouped < 0.9 * sum(positions)   # close to the real tokens: less work
    real = f.inputs["padding_mask"].astype(bool)     # padding is never decoded
    for g, o in zip(grouped, ordered):
        np.testing.assert_allclose(g[real], o[real], atol=2e-4)
    fast = QuestionAnsweringPipeline(qa, batch_size=8)(question=questions, context=contexts, top_k=2)
    plain = QuestionAnsweringPipeline(qa, batch_size=8, group_by_length=False)(question=questions,
                                                                               context=contexts, top_k=2)
    assert [[(a["answer"], a["start"], a["end"]) for a in x] for x in fast] == \
        [[(a["answer"], a["start"], a["end"]) for a in x] for x in plain]
    np.testing.assert_allclose([a["score"] for x in fast for a in x], [a["score"] for x in plain for a in x],
                               rtol=1e-4)


def test_null_answers(qa):
    context = "Bath is a city in Somerset, England."
    f = qa.features("Where is Bath?", context)
    start = np.zeros(f.inputs["token_ids"].shape, np.float32)
    end = start.copy()
    start[:, 0] = end[:, 0] = 8.0                     # [CLS] wins: the model says "no answer"
    (answers, null), = decode_answers(f, start, end, handle_impossible_answer=True)
    assert answers[0] == {"score": null, "start": 0, "end": 0, "answer": ""} and null > 0.9
    (answers, null2), = decode_answers(f, start, end, handle_impossible_answer=False)
    assert answers[0]["answer"] != "" and null2 == null   # without the option the best span still comes out
    pipe = QuestionAnsweringPipeline(qa, handle_impossible_answer=True)
    out = pipe(question="Where is Bath?", context=context, top_k=20)
    assert any(a["answer"] == "" and (a["start"], a["end"]) == (0, 0) for a in out)


def test_null_threshold_is_chosen_to_maximise_f1():
    examples = [QAExample("a", "q", "ctx", (SquadAnswer("ctx", 0),)), QAExample("b", "q", "ctx", ()),
                QAExample("c", "q", "ctx", ()), QAExample("d", "q", "ctx", (SquadAnswer("ctx", 0),))]
    predictions = {"a": "ctx", "b": "ctx", "c": "ctx", "d": "ctx"}
    margins = {"a": -0.5, "b": 0.3, "c": 0.4, "d": 0.1}     # null_score - best span score
    threshold, f1 = best_null_threshold(margins, predictions, examples)
    assert f1 == 100.0 and 0.1 <= threshold < 0.3
    # always-span and always-null are worse
    assert squad_metrics(predictions, examples)["f1"] == 50.0
    assert squad_metrics({k: "" for k in predictions}, examples)["f1"] == 50.0


def test_predict_answers_with_a_null_threshold(qa, held):
    examples = held[:6]
    spans, margins = qa.predict_answers(examples)
    assert set(spans) == {e.id for e in examples} and all(spans.values())
    nulls, _ = qa.predict_answers(examples, null_threshold=min(margins.values()) - 1.0)
    assert all(v == "" for v in nulls.values())
    kept, _ = qa.predict_answers(examples, null_threshold=max(margins.values()) + 1.0)
    assert kept == spans


@pytest.mark.parametrize("kwargs, message", [
    ({"question": "", "context": "Bath is in England."}, "question 0 is empty"),
    ({"question": "   ", "context": "Bath is in England."}, "question 0 is empty"),
    ({"question": "Where?", "context": ["Bath", 3]}, "must be a string"),
    ({"question": "Where?", "context": 42}, "context a string or a list"),
    ({"question": "Where?", "context": ""}, "context 0 is empty"),
    ({"question": ["a?", "b?"], "context": ["c"]}, "2 questions but 1 contexts"),
    ({"question": "Where?"}, "needs both question= and context="),
    ({"question": "Where?", "context": "Bath is in England.", "doc_stride": 95}, "doc_stride=95 must be smaller"),
])
def test_bad_inputs_get_clear_errors(qa, kwargs, message):
    pipe = QuestionAnsweringPipeline(qa)
    with pytest.raises(ModelInputError, match=message):
        pipe(**kwargs)


def test_top_k_and_max_answer_len_are_checked(qa):
    pipe = QuestionAnsweringPipeline(qa)
    with pytest.raises(ValueError, match="top_k"):
        pipe(question="Where?", context="Bath is in England.", top_k=0)
    out = pipe(question="Where?", context="Bath is in England, a country of the United Kingdom.", top_k=10,
               max_answer_len=1)
    assert all(len(qa.preprocessor.tokenizer.tokenize([a["answer"]]).flat_values) <= 2 for a in out)


def test_keras_file_and_run_settings_round_trip(qa, tmp_path):
    path = tmp_path / "qa.keras"
    qa.save(path)
    back = keras.saving.load_model(path)
    assert isinstance(back, BertQuestionAnswerer) and (back.doc_stride, back.max_answer_len) == (32, 10)
    q, c = "Where is Bath?", "Bath is a city in Somerset, England."
    (got, null_got), = back.answer(q, c, top_k=3)
    (want, null_want), = qa.answer(q, c, top_k=3)
    assert [(a["answer"], a["start"]) for a in got] == [(a["answer"], a["start"]) for a in want]
    np.testing.assert_allclose([a["score"] for a in got] + [null_got], [a["score"] for a in want] + [null_want],
                               rtol=1e-4)
    rebuilt = BertQuestionAnswerer.from_run_settings(BertBackbone(qa.backbone.config), qa.preprocessor,
                                                     {"doc_stride": 16, "max_query_length": 20, "max_answer_len": 7})
    assert (rebuilt.doc_stride, rebuilt.max_query_length, rebuilt.max_answer_len) == (16, 20, 7)


def test_lexical_baseline_and_question_types(held):
    for ex in held[:30]:
        s, e = lexical_baseline(ex.question, ex.context)
        assert 0 <= s < e <= len(ex.context) and ex.context[s:e].strip()
    assert [question_type(q) for q in ("Who wrote it?", "When did it end?", "Why?", "Name the river.")] == \
        ["who", "when", "why", "other"]


# ----------------------------------------------------------------------------- the metric vs the official script
def official_normalize_answer(s):
    """evaluate-v1.1.py's normalize_answer, as published."""
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def official_f1_score(prediction, ground_truth):
    prediction_tokens = official_normalize_answer(prediction).split()
    ground_truth_tokens = official_normalize_answer(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def official_exact_match_score(prediction, ground_truth):
    return (official_normalize_answer(prediction) == official_normalize_answer(ground_truth))


def official_metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    scores_for_ground_truths = []
    for ground_truth in ground_truths:
        score = metric_fn(prediction, ground_truth)
        scores_for_ground_truths.append(score)
    return max(scores_for_ground_truths)


def official_evaluate(dataset, predictions):
    f1 = exact_match = total = 0
    for article in dataset:
        for paragraph in article['paragraphs']:
            for qa in paragraph['qas']:
                total += 1
                if qa['id'] not in predictions:
                    continue   # the script prints "Unanswered question ... will receive score 0."
                ground_truths = list(map(lambda x: x['text'], qa['answers']))
                prediction = predictions[qa['id']]
                exact_match += official_metric_max_over_ground_truths(
                    official_exact_match_score, prediction, ground_truths)
                f1 += official_metric_max_over_ground_truths(
                    official_f1_score, prediction, ground_truths)
    exact_match = 100.0 * exact_match / total
    f1 = 100.0 * f1 / total
    return {'exact_match': exact_match, 'f1': f1}


@pytest.mark.parametrize("prediction, gold, em, f1", [
    ("Denver Broncos", "Denver Broncos", True, 1.0),
    ("the Denver Broncos!", "Denver Broncos", True, 1.0),
    ("Broncos", "Denver Broncos", False, 2 / 3),
    ("Denver Broncos won", "Denver Broncos", False, 0.8),
    ("An apple a day", "apple day", True, 1.0),
    ("Carolina", "Denver Broncos", False, 0.0),
    ("", "Denver Broncos", False, 0.0),
    ("the", "a", True, 0.0),                 # both normalise to "": EM, but no token to share: F1 0
    ("1,000", "1000", True, 1.0),            # punctuation removed inside numbers too
    ("Sante Fe—New Mexico", "Sante Fe New Mexico", False, 4 / 7),   # an em dash is not ASCII punctuation
    ("B B B", "B", False, 0.5),
])
def test_metric_hand_cases_equal_the_official_logic(prediction, gold, em, f1):
    assert exact_match(prediction, gold) is em is official_exact_match_score(prediction, gold)
    assert f1_score(prediction, gold) == pytest.approx(f1) == official_f1_score(prediction, gold)
    assert normalize_answer(prediction) == official_normalize_answer(prediction)


def test_metric_on_a_full_predictions_file_equals_the_official_script(dev):
    raw = json.loads(squad_path("dev-v1.1.json").read_text(encoding="utf-8"))["data"]
    rng = np.random.RandomState(0)
    predictions = {}
    for ex in dev.examples():
        kind = rng.randint(6)
        gold = ex.answers[rng.randint(len(ex.answers))].text
        words = ex.context.split()
        if kind == 0:
            predictions[ex.id] = gold
        elif kind == 1:
            predictions[ex.id] = "The " + gold.upper() + "."
        elif kind == 2:
            predictions[ex.id] = " ".join(gold.split()[:-1]) or gold[:1]
        elif kind == 3:
            s = rng.randint(len(words))
            predictions[ex.id] = " ".join(words[s:s + rng.randint(1, 6)])
        elif kind == 4:
            predictions[ex.id] = ""
        # kind 5: no prediction (scores 0, as the official script does)
    ours = squad_metrics(predictions, dev.examples())
    official = official_evaluate(raw, predictions)
    assert ours["count"] == 10570
    assert ours["exact_match"] == pytest.approx(official["exact_match"], abs=1e-9)
    assert ours["f1"] == pytest.approx(official["f1"], abs=1e-9)
    assert 20 < official["f1"] < 80   # a mix of right, partial and wrong answers


@pytest.mark.parametrize("context_tokens", [1, 3, 7, 40, 150])
@pytest.mark.parametrize("topk", [1, 12, 30])
def test_band_span_search_equals_the_whole_matrix(context_tokens, topk):
    """The decoder ranks only the max_answer_len diagonals over the context; the result is Hugging Face's
    whole-matrix ranking (transformers' own ``decode_spans``), also for contexts too short to fill topk
    (where HF returns zero-score pairs)."""
    pytest.importorskip("torch")
    hf_decode_spans = pytest.importorskip("transformers.pipelines.question_answering").decode_spans
    rng = np.random.default_rng(context_tokens * 100 + topk)
    for trial in range(20):
        width = context_tokens + 20
        c0 = int(rng.integers(1, 19))
        desired = np.zeros(width, bool)
        desired[c0:c0 + context_tokens] = True
        logits = rng.normal(0, 3, (2, width)).astype("float32")
        start, end = (np.where(desired, x, -10000.0) for x in logits)
        start, end = (np.exp(x - x.max()) / np.exp(x - x.max()).sum() for x in (start, end))
        start, end = start.astype("float32"), end.astype("float32")
        max_answer_len = int(rng.integers(1, 35))
        got = _decode_spans(start, end, topk, max_answer_len, desired)
        want = hf_decode_spans(start, end, topk, max_answer_len, desired)
        if context_tokens * min(max_answer_len, context_tokens) >= topk:   # enough positive pairs: same order
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g, w)
        else:                                                              # zero-score ties: same set
            assert sorted(zip(*got[:2])) == sorted(zip(*want[:2]))
            np.testing.assert_array_equal(np.sort(got[2]), np.sort(want[2]))


# ----------------------------------------------------------------------------- the twin
def test_twin_hugging_face_question_answering_pipeline(qa, held, tmp_path):
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    path = save_hf_question_answerer(qa, tmp_path / "hf")
    model = transformers.BertForQuestionAnswering.from_pretrained(str(path)).eval()
    tokenizer = transformers.BertTokenizerFast.from_pretrained(str(path))
    hf = transformers.QuestionAnsweringPipeline(model=model, tokenizer=tokenizer, framework="pt", device=-1)
    ours = QuestionAnsweringPipeline(qa)
    examples = held[::150][:12]
    options = dict(top_k=3, max_answer_len=10)
    mine = ours(question=[e.question for e in examples], context=[e.context for e in examples], **options)
    windows = 0
    for i, ex in enumerate(examples):
        theirs = hf(question=ex.question, context=ex.context, max_seq_len=SEQ, doc_stride=32,
                    handle_impossible_answer=i % 3 == 0, **options)
        got = mine[i] if i % 3 else ours(question=ex.question, context=ex.context, handle_impossible_answer=True,
                                         **options)
        windows += len(qa.features(ex.question, ex.context))
        assert [(a["answer"], a["start"], a["end"]) for a in got] == \
            [(a["answer"], a["start"], a["end"]) for a in theirs], ex.id
        np.testing.assert_allclose([a["score"] for a in got], [a["score"] for a in theirs], atol=1e-3, rtol=1e-3)
    assert windows > 2 * len(examples)   # long contexts: several windows each, so the stride logic is compared
