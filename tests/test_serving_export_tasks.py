"""Export of the token-classification and question-answering tasks (issue 18, item 1): a SavedModel that
takes raw strings, reloaded in a fresh process that imports only tensorflow + tensorflow_text, gives the
Python pipeline's answers on real texts (WNUT-17 test tweets; held-out SQuAD dev questions), with the
windows over long texts and the span decoding inside the graph; bad input gets clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from bertcourse import BertConfig
from bertcourse.data.conll import load_wnut17
from bertcourse.data.squad import read_squad, split_articles, squad_path
from bertcourse.errors import ModelInputError
from bertcourse.models import BertBackbone
from bertcourse.serving.export import QA_OUTPUTS, TOKEN_OUTPUTS, export_task, read_serving_metadata
from bertcourse.tasks import SentenceEncoder
from bertcourse.tasks.question_answering import BertQuestionAnswerer, QuestionAnsweringPipeline
from bertcourse.tasks.token_classification import BertTokenClassifier, TokenClassificationPipeline
from bertcourse.text import BertPreprocessor, bert_uncased_vocab_path

NER_SEQ = 32          # 30 pieces per window: a third of the WNUT-17 test tweets need 2 or more windows
QA_SEQ, QA_STRIDE, QA_MAX_ANSWER = 96, 32, 10
N_TWEETS, N_QUESTIONS = 48, 32
EXTRA_TEXTS = ["", "Café CRÈME at the [MASK] in 東京 ☃ naïve", "@jane_austen wrote #Emma " + "x" * 130]

FRESH = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the tokenizer's ops
args = json.loads(sys.argv[1])
def lists(result):  # strings come back as bytes: json.dumps decodes them as UTF-8 (default= below)
    return {k: v.numpy().tolist() for k, v in result.items()}
out = {"bertcourse_imported": any(m.split(".")[0] == "bertcourse" for m in sys.modules)}
ner = tf.saved_model.load(args["ner"]).signatures["serving_default"]
out["ner"] = lists(ner(text=tf.constant(args["texts"])))
out["ner_inputs"] = sorted(ner.structured_input_signature[1])
qa = tf.saved_model.load(args["qa"]).signatures["serving_default"]
out["qa"] = lists(qa(question=tf.constant(args["questions"]), context=tf.constant(args["contexts"])))
out["qa_inputs"] = sorted(qa.structured_input_signature[1])
print(json.dumps(out, default=lambda b: b.decode("utf-8")))
"""


@pytest.fixture(scope="module")
def wnut():
    return load_wnut17("train").label_list, [" ".join(words) for words in load_wnut17("test").sentences[:N_TWEETS]]


@pytest.fixture(scope="module")
def squad():
    return split_articles(read_squad(squad_path("dev-v1.1.json")))[1].examples()[:N_QUESTIONS]


@pytest.fixture(scope="module")
def ner_model(wnut):
    """A tiny random token classifier on the real uncased vocabulary, with a sharp random head (labels decided
    by clear margins, not by float round-off)."""
    keras.utils.set_random_seed(0)
    pre = BertPreprocessor.from_vocab_file(bert_uncased_vocab_path(), sequence_length=NER_SEQ)
    model = BertTokenClassifier(BertBackbone(BertConfig.preset("tiny", vocab_size=30522)), labels=wnut[0],
                                preprocessor=pre)
    kernel = model.output_dense.weights[0]
    kernel.assign(np.random.default_rng(0).normal(0, 0.5, kernel.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def qa_model():
    """A tiny random QA model; the span head scaled up so start/end scores are peaked (no near-ties)."""
    keras.utils.set_random_seed(0)
    pre = BertPreprocessor.from_vocab_file(bert_uncased_vocab_path(), sequence_length=QA_SEQ,
                                           truncation="only_second")
    cfg = BertConfig(vocab_size=30522, num_layers=2, hidden_size=32, num_heads=2, intermediate_size=64,
                     max_position_embeddings=128)
    model = BertQuestionAnswerer(BertBackbone(cfg), preprocessor=pre, doc_stride=QA_STRIDE,
                                 max_answer_len=QA_MAX_ANSWER)
    model.span_dense.kernel.assign(np.random.RandomState(0).normal(0, 2.0, (32, 2)).astype("float32"))
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory, ner_model, qa_model):
    root = tmp_path_factory.mktemp("export-tasks")
    return {"ner": export_task(ner_model, root / "ner"), "qa": export_task(qa_model, root / "qa")}


def _served_entities(served: dict, i: int) -> list[dict]:
    """Row ``i`` of the token signature's outputs as pipeline('ner', aggregation_strategy='none') results."""
    return [{"entity": served["entity"][i][j], "score": served["score"][i][j], "index": j + 1,
             "word": served["word"][i][j], "start": served["start"][i][j], "end": served["end"][i][j]}
            for j in range(served["num_pieces"][i]) if served["entity"][i][j] != "O"]


def test_fresh_process_without_bertcourse_gives_the_pipelines_answers(exported, ner_model, qa_model, wnut, squad):
    texts = wnut[1] + EXTRA_TEXTS
    questions, contexts = [e.question for e in squad], [e.context for e in squad]
    args = {"ner": str(exported["ner"]), "qa": str(exported["qa"]), "texts": texts, "questions": questions,
            "contexts": contexts}
    proc = subprocess.run([sys.executable, "-c", FRESH, json.dumps(args)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["bertcourse_imported"] is False
    assert got["ner_inputs"] == ["text"] and got["qa_inputs"] == ["context", "question"]

    # token classification: every piece's entity, score, index, word and character span as the pipeline's
    ner, window = got["ner"], NER_SEQ - 2
    python = TokenClassificationPipeline(ner_model, aggregation_strategy="none")(texts)
    assert sum(n > window for n in ner["num_pieces"]) >= 5         # the windows in the graph are exercised
    assert sum(len(r) for r in python) > 50                         # a random head finds entities: compared
    for i, text in enumerate(texts):
        served = _served_entities(ner, i)
        assert [{k: v for k, v in e.items() if k != "score"} for e in served] == \
               [{k: v for k, v in e.items() if k != "score"} for e in python[i]], text
        np.testing.assert_allclose([e["score"] for e in served], [e["score"] for e in python[i]], atol=1e-5)
        for j in range(ner["num_pieces"][i]):                       # offsets are characters of the text
            assert text[ner["start"][i][j]:ner["end"][i][j]]
        assert not any(ner["mask"][i][ner["num_pieces"][i]:])
    assert ner["num_pieces"][len(wnut[1])] == 0                     # the empty string: no pieces
    assert "東" in [ner["word"][len(wnut[1]) + 1][j] for j in range(ner["num_pieces"][len(wnut[1]) + 1])]

    # question answering: the best answer's text, character span and score as the pipeline's
    qa = got["qa"]
    python = QuestionAnsweringPipeline(qa_model)(question=questions, context=contexts, max_answer_len=QA_MAX_ANSWER)
    assert max(qa["num_windows"]) >= 2 and min(qa["num_windows"]) == 1
    assert qa["answer"] == [r["answer"] for r in python]
    assert qa["start"] == [r["start"] for r in python] and qa["end"] == [r["end"] for r in python]
    np.testing.assert_allclose(qa["score"], [r["score"] for r in python], atol=1e-5)
    assert all(c[s:e] == a for c, s, e, a in zip(contexts, qa["start"], qa["end"], qa["answer"]))
    nulls = [null for _, null in qa_model.answer(questions, contexts)]
    np.testing.assert_allclose(qa["null_score"], nulls, atol=1e-6)
    windows = [len(qa_model.features(q, c)) for q, c in zip(questions, contexts)]
    assert qa["num_windows"] == windows


def test_metadata_names_inputs_outputs_and_settings(exported, ner_model, qa_model):
    ner = read_serving_metadata(exported["ner"])
    assert ner["task"] == "token-classification" and ner["inputs"] == ["text"] and ner["outputs"] == TOKEN_OUTPUTS
    assert ner["labels"] == ner_model.label_names and ner["window"] == NER_SEQ - 2
    assert ner["stride"] == (NER_SEQ - 2) // 4 and set(ner["output_shapes"]) == set(TOKEN_OUTPUTS)
    qa = read_serving_metadata(exported["qa"])
    assert qa["task"] == "question-answering" and qa["inputs"] == ["question", "context"]
    assert qa["outputs"] == QA_OUTPUTS and set(qa["output_shapes"]) == set(QA_OUTPUTS)
    assert (qa["doc_stride"], qa["max_answer_len"], qa["sequence_length"]) == (QA_STRIDE, QA_MAX_ANSWER, QA_SEQ)
    for path in exported.values():
        vocab = (path / "assets" / "vocab.txt").read_text(encoding="utf-8").splitlines()
        assert len(vocab) == 30522 and vocab[101] == "[CLS]"
    # the signature returns exactly the outputs the metadata names
    for name, meta in (("ner", ner), ("qa", qa)):
        signature = tf.saved_model.load(str(exported[name])).signatures["serving_default"]
        assert sorted(signature.structured_outputs) == sorted(meta["outputs"])


def test_edge_cases_in_the_graph(exported, qa_model):
    ner = tf.saved_model.load(str(exported["ner"])).signatures["serving_default"]
    empty = ner(text=tf.constant([], tf.string))
    assert empty["entity"].shape[0] == 0 and empty["num_pieces"].shape == (0,)
    qa = tf.saved_model.load(str(exported["qa"])).signatures["serving_default"]
    out = qa(question=tf.constant(["Where is Bath?", "Where?"]), context=tf.constant(["Bath is in England.", "  "]))
    answer = out["answer"].numpy()[0].decode()
    assert answer and answer in "Bath is in England."
    # a context without a token has no span: the empty answer, not an error for the whole batch
    assert out["answer"].numpy()[1] == b"" and out["start"].numpy()[1] == out["end"].numpy()[1] == 0
    assert float(out["score"].numpy()[1]) == 0.0
    assert qa(question=tf.constant([], tf.string), context=tf.constant([], tf.string))["answer"].shape == (0,)
    with pytest.raises(tf.errors.InvalidArgumentError, match="same size"):
        qa(question=tf.constant(["a", "b"]), context=tf.constant(["c"]))
    # the Python side refuses a question that leaves no room for doc_stride context tokens; so does the graph
    long_question = " ".join(["word"] * 70)
    with pytest.raises(ModelInputError, match="doc_stride"):
        qa_model.features(long_question, "Bath is in England.")
    with pytest.raises(tf.errors.InvalidArgumentError, match="question is too long"):
        qa(question=tf.constant([long_question]), context=tf.constant(["Bath is in England."]))


def test_refusals(exported, ner_model, qa_model, tmp_path):
    encoder = SentenceEncoder(BertBackbone("tiny", vocab_size=30522),
                              preprocessor=BertPreprocessor.from_vocab_file(bert_uncased_vocab_path()))
    with pytest.raises(ModelInputError, match="Export supports classification, token-classification, "
                                              "question-answering models; got a SentenceEncoder"):
        export_task(encoder, tmp_path / "encoder")
    with pytest.raises(ModelInputError, match="pairs=True is for sentence-pair classifiers"):
        export_task(ner_model, tmp_path / "x", pairs=True)
    with pytest.raises(ModelInputError, match="stride must be an int in"):
        export_task(ner_model, tmp_path / "x", stride=NER_SEQ)
    with pytest.raises(ModelInputError, match="stride is for token classification"):
        export_task(qa_model, tmp_path / "x", stride=4)
    with pytest.raises(ModelInputError, match="max_answer_len must be an int >= 1"):
        export_task(qa_model, tmp_path / "x", max_answer_len=0)
    with pytest.raises(ModelInputError, match="max_answer_len is for question answering"):
        export_task(ner_model, tmp_path / "x", max_answer_len=5)
    assert not (tmp_path / "x").exists() and not any(p.name.startswith(".") for p in tmp_path.iterdir())
