"""Token classification (NER): alignment on all of WNUT-17, exact spans, the metric against seqeval, bad
input, long texts, saving, and the twin test against transformers' TokenClassificationPipeline."""

import unicodedata
import warnings

import keras
import numpy as np
import pytest

from bertcourse.config import BertConfig
from bertcourse.data.conll import ConllData, load_wnut17
from bertcourse.errors import DataFileError, ModelInputError
from bertcourse.models import BertBackbone
from bertcourse.pipelines import pipeline
from bertcourse.tasks import TASKS, BertTokenClassifier, TokenClassificationPipeline
from bertcourse.tasks.token_classification import (AGGREGATION_STRATEGIES, IGNORE_INDEX, align_labels,
                                                   encode_tagged, entity_metrics, gazetteer_baseline,
                                                   most_frequent_tag_baseline, predict_word_tags, repair_iob2,
                                                   save_hf_token_classifier, strict_entities, word_ids_of_pieces,
                                                   word_labels_from_pieces, word_spans)
from bertcourse.text import BertPreprocessor, FastWordPieceTokenizer, bert_uncased_vocab_path

SPLITS = ("train", "dev", "test")


@pytest.fixture(scope="module")
def wnut():
    return {split: load_wnut17(split) for split in SPLITS}


@pytest.fixture(scope="module")
def labels(wnut):
    return wnut["train"].label_list


@pytest.fixture(scope="module")
def preprocessor():
    return BertPreprocessor.from_vocab_file(bert_uncased_vocab_path(), sequence_length=192)


@pytest.fixture(scope="module")
def model(labels, preprocessor):
    """A tiny random model on the real uncased vocabulary; a sharp random head (stddev 0.5) so that labels
    are decided by clear margins, not by float round-off."""
    keras.utils.set_random_seed(0)
    backbone = BertBackbone(BertConfig.preset("tiny", vocab_size=preprocessor.tokenizer.vocabulary_size()))
    task = BertTokenClassifier(backbone, labels=labels, preprocessor=preprocessor)
    kernel = task.output_dense.weights[0]
    kernel.assign(np.random.default_rng(0).normal(0, 0.5, kernel.shape).astype("float32"))
    return task


def test_labels_and_registry(labels, model):
    assert labels == ["O", "B-corporation", "I-corporation", "B-creative-work", "I-creative-work", "B-group",
                      "I-group", "B-location", "I-location", "B-person", "I-person", "B-product", "I-product"]
    assert TASKS["ner"] is TASKS["token-classification"] is TokenClassificationPipeline
    assert isinstance(pipeline("ner", model=model), TokenClassificationPipeline)
    assert isinstance(pipeline("token-classification", model=model), TokenClassificationPipeline)


@pytest.mark.parametrize("label_all_pieces", [False, True])
def test_alignment_round_trips_on_all_of_wnut17(wnut, labels, preprocessor, label_all_pieces):
    index = {label: i for i, label in enumerate(labels)}
    words_without_pieces = 0
    for split in SPLITS:
        data = wnut[split]
        x, y, word_ids = encode_tagged(preprocessor, data.sentences, data.tags, labels,
                                       label_all_pieces=label_all_pieces)
        assert x["token_ids"].shape == y.shape == (len(data), 192)
        for i, (words, tags) in enumerate(zip(data.sentences, data.tags)):
            n = len(word_ids[i])
            assert (y[i, 0], y[i, n + 1]) == (IGNORE_INDEX, IGNORE_INDEX)  # [CLS], [SEP]
            pieces = y[i, 1:n + 1].tolist()
            back = word_labels_from_pieces(word_ids[i], pieces, len(words), fill=index["O"])
            assert back == [index[t] for t in tags], (split, i)
            words_without_pieces += len(words) - len(set(word_ids[i]))
            if not label_all_pieces:  # exactly one labelled piece per word that has pieces
                assert sum(p != IGNORE_INDEX for p in pieces) == len(set(word_ids[i]))
            else:
                assert IGNORE_INDEX not in pieces
    assert words_without_pieces == 7  # lone U+FE0F (variation selector): normalisation deletes them; all O


def test_all_pieces_variant_turns_b_into_i():
    assert align_labels([0, 0, 0, 1, 1], [1, 2], label_all_pieces=True, b_to_i=[0, 2, 2]) == [1, 2, 2, 2, 2]
    assert align_labels([0, 0, 1], [1, 0]) == [1, IGNORE_INDEX, 0]
    assert word_ids_of_pieces([0, 2, 4, 9], [(0, 3), (4, 6)]) == [0, 0, 1, None]


def _plain(text):
    return "".join(c for c in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(c) != "Mn"
                   and not c.isspace())


def test_spans_are_exact_substrings(wnut, preprocessor, model):
    data = wnut["dev"]
    # gold entities -> character spans in the joined text: the slice is exactly the entity's words
    for words, tags in zip(data.sentences, data.tags):
        text, spans = word_spans(words)
        for kind, start, end in strict_entities(repair_iob2(tags)):
            assert text[spans[start][0]:spans[end - 1][1]] == " ".join(words[start:end])
    # predicted entities (word-level strategies) start and end on word boundaries of the original text (BERT's
    # words: whitespace and punctuation split them, so "spider-man" is three words, as in Hugging Face)
    texts = data.texts()[:120]
    for strategy in ("first", "max", "average"):
        for text, entities in zip(texts, TokenClassificationPipeline(model, aggregation_strategy=strategy)(texts)):
            for e in entities:
                start, end = e["start"], e["end"]
                assert text[start:end] and text[start:end] == text[start:end].strip()
                assert not (start > 0 and text[start - 1].isalnum() and text[start].isalnum()), (text, e)
                assert not (end < len(text) and text[end - 1].isalnum() and text[end].isalnum()), (text, e)
                assert _plain(e["word"]) == _plain(text[start:end]), (text, e)  # the word is the span, normalised
    # pieces: each covers characters of one word, in order
    for text, entities in zip(texts, TokenClassificationPipeline(model)(texts)):
        for e in entities:
            assert 0 <= e["start"] < e["end"] <= len(text) and " " not in text[e["start"]:e["end"]]


def _seqeval_report(true, pred, strict):
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2
    kwargs = {"mode": "strict", "scheme": IOB2} if strict else {}
    report = classification_report(true, pred, output_dict=True, zero_division=0, **kwargs)
    return (precision_score(true, pred, **kwargs), recall_score(true, pred, **kwargs), f1_score(true, pred, **kwargs),
            report)


def test_metric_equals_seqeval_on_real_predictions(wnut, model):
    pytest.importorskip("seqeval")
    train, test = wnut["train"], wnut["test"]
    sentences = test.sentences[:400]
    predictions = {
        "most frequent tag": most_frequent_tag_baseline(train, test.sentences),
        "gazetteer": gazetteer_baseline(train, test.sentences),
        "random tiny model": predict_word_tags(model, sentences) + test.tags[400:],
    }
    assert any(t.startswith("I-") and (i == 0 or p[i - 1][2:] != t[2:])  # stray I- tags are in there
               for p in predictions["random tiny model"] for i, t in enumerate(p))
    for name, pred in predictions.items():
        for strict in (False, True):
            ours = entity_metrics(test.tags, pred, mode="strict" if strict else "default")
            p, r, f, report = _seqeval_report(test.tags, pred, strict)
            assert (ours["precision"], ours["recall"], ours["f1"]) == pytest.approx((p, r, f), abs=1e-12), name
            for kind, row in ours["per_type"].items():
                theirs = report[kind]
                assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx(
                    (theirs["precision"], theirs["recall"], theirs["f1-score"], theirs["support"]), abs=1e-12)
    baseline = entity_metrics(test.tags, predictions["most frequent tag"])
    assert 0.0 < baseline["f1"] < 0.3  # WNUT-17 test entities are mostly unseen in train, by design


def test_bad_input_is_refused_or_repaired(labels, preprocessor):
    with pytest.raises(DataFileError, match=r"sentence 0: 3 tags for 2 words"):
        encode_tagged(preprocessor, [["Jane", "Austen"]], [["B-person", "I-person", "O"]], labels)
    with pytest.raises(DataFileError, match=r"sentence 0, word 1: unknown tag 'I-PER'"):
        encode_tagged(preprocessor, [["Jane", "Austen"]], [["B-person", "I-PER"]], labels)
    with pytest.raises(ModelInputError, match="only 1 labels"):
        align_labels([0, 1], [3])
    stray = [["O", "I-person", "I-person", "O"]]
    assert entity_metrics(stray, stray, mode="strict")["true_entities"] == 0  # seqeval strict: not an entity
    with pytest.raises(ModelInputError, match=r"sentence 0: tag 1 'I-person' starts an entity without B-person"):
        entity_metrics(stray, stray, mode="strict", on_invalid="raise")
    assert entity_metrics(stray, stray, mode="strict", on_invalid="repair")["true_entities"] == 1
    assert entity_metrics(stray, stray)["true_entities"] == 1  # the CoNLL default reads I- as a start
    with pytest.raises(ModelInputError, match="not IOB2"):
        entity_metrics([["S-person"]], [["O"]], mode="strict")
    with pytest.raises(ModelInputError, match="2 gold sentences but 1 predicted"):
        entity_metrics([["O"], ["O"]], [["O"]])
    small = BertConfig(vocab_size=30522, num_layers=1, hidden_size=16, num_heads=2, intermediate_size=32)
    task = BertTokenClassifier(BertBackbone(small), labels=labels, preprocessor=preprocessor)
    with pytest.raises(ValueError, match="aggregation_strategy must be one of"):
        TokenClassificationPipeline(task, aggregation_strategy="mean")
    with pytest.raises(ValueError, match="labels must be 2 distinct strings"):
        BertTokenClassifier(BertBackbone(small), num_labels=2, labels=["O", "O"])


def test_long_text_windows_never_cut_an_entity(labels):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "jane", "austen", "##s", "bath"]
    pre = BertPreprocessor(FastWordPieceTokenizer(vocab), sequence_length=8)  # windows of 6 pieces
    task = BertTokenClassifier(BertBackbone("tiny", vocab_size=len(vocab)), labels=["O", "B-person", "I-person"],
                               preprocessor=pre)
    kernel, bias = task.output_dense.weights
    kernel.assign(np.zeros(kernel.shape, "float32"))
    bias.assign(np.array([0.0, 0.0, 5.0], "float32"))  # every piece I-person
    text = " ".join(["jane austens bath"] * 7)  # 28 pieces: 6 windows
    (ids, starts, ends, logits), = task.piece_logits([text], stride=2)
    assert len(ids) == 28 and logits.shape == (28, 3)
    entities = TokenClassificationPipeline(task, aggregation_strategy="simple")(text)
    assert [(e["entity_group"], e["start"], e["end"]) for e in entities] == [("person", 0, len(text))]
    assert entities[0]["word"] == text
    assert len(TokenClassificationPipeline(task)(text)) == 28  # "none": one result per piece


def test_keras_round_trip(tmp_path, labels):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "jane", "austen"]
    task = BertTokenClassifier(BertBackbone("tiny", vocab_size=len(vocab)), labels=labels,
                               preprocessor=BertPreprocessor(FastWordPieceTokenizer(vocab), sequence_length=8))
    path = tmp_path / "ner.keras"
    task.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, BertTokenClassifier) and loaded.labels == labels
    x = encode_tagged(task.preprocessor, [["Jane", "Austen"]], None, labels)[0]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), task.predict(x, verbose=0), atol=1e-6)
    assert TokenClassificationPipeline(loaded)("jane austen") == TokenClassificationPipeline(task)("jane austen")


def test_twin_transformers_pipeline(tmp_path, wnut, model):
    """The same weights in transformers (torch, CPU): identical entity lists for every aggregation strategy on
    real WNUT-17 sentences (+ accents, [UNK] characters, emoji), scores within 1e-4."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from transformers.pipelines.token_classification import AggregationStrategy
    torch.set_num_threads(1)  # 2 shared cores: more threads only contend
    path = save_hf_token_classifier(model, tmp_path / "hf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        transformers.logging.set_verbosity_error()
        hf = transformers.pipeline("ner", model=str(path), framework="pt", device=-1)
    odd = [t for t in wnut["dev"].texts() if "\ufe0f" in t or "\u200b" in t][:4]  # invisible characters
    texts = wnut["test"].texts()[:150] + odd + [
        "Café ñandú in Zürich , Ångström 's déjà vu", "☃ snowman ⌘ and 漢字 here !", "don't stop @jane_austen #Bath"]
    ours = {s: TokenClassificationPipeline(model, aggregation_strategy=s)(texts) for s in AGGREGATION_STRATEGIES}
    forwards = []
    with torch.inference_mode():
        for text in texts:  # one forward per text; the pipeline's own postprocess for each strategy
            forwards.append([hf._forward(x) for x in hf.preprocess(text, is_split_into_words=False)])
    checked = 0
    for strategy in AGGREGATION_STRATEGIES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = [hf.postprocess(f, aggregation_strategy=AggregationStrategy[strategy.upper()]) for f in forwards]
        key = "entity" if strategy == "none" else "entity_group"
        for text, a, b in zip(texts, ours[strategy], theirs):
            extra = ("index",) if strategy == "none" else ()
            assert [tuple(e[k] for k in (key, "word", "start", "end") + extra) for e in a] == \
                [tuple(e[k] for k in (key, "word", "start", "end") + extra) for e in b], (strategy, text)
            assert [sorted(e) for e in a] == [sorted(e) for e in b]
            np.testing.assert_allclose([e["score"] for e in a], [float(e["score"]) for e in b], atol=1e-4)
            checked += len(a)
    assert checked > 5000
