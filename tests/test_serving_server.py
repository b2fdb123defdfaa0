"""The HTTP service: TF Serving's REST contract on 127.0.0.1 (a real uvicorn server in a thread on a free
port), every bad request gets its documented 4xx and the service keeps answering, the API-key rule, and a
short bounded concurrent load run in which every answer carries the right label."""

from __future__ import annotations

import asyncio
import itertools
import json
import random

import httpx
import pytest

from bertcourse.cli import main as cli_main
from bertcourse.serving.server import (ServingConfig, ServingError, check_bind, create_app, estimate_length,
                                       parse_model_arguments, split_by_length, start_in_thread)
from bertcourse.serving.export import export_task
from bertcourse.models import BertBackbone
from bertcourse.tasks import BertClassifier
from bertcourse.text import BertPreprocessor, bert_uncased_vocab_path
from serving_support import CHECK, EchoModel, finetune_tiny_run

KEY = "test-key-0123456789"


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    run = finetune_tiny_run(root)
    assert cli_main(["export", str(run), str(root / "sentiment")]) == 0  # the command line's export
    pre = BertPreprocessor.from_vocab_file(bert_uncased_vocab_path(), sequence_length=16)
    pair = BertClassifier(BertBackbone("tiny", vocab_size=30522), 2, preprocessor=pre, labels=["no", "yes"])
    export_task(pair, root / "pairs", pairs=True)
    return {"sentiment": root / "sentiment", "pairs": root / "pairs"}


@pytest.fixture(scope="module")
def server(exports):
    config = ServingConfig(max_batch_size=16, max_wait_ms=5, max_body_bytes=64 * 1024, max_instances=64,
                           timeout_s=30)
    app = create_app(parse_model_arguments([str(exports["sentiment"]), f"qq={exports['pairs']}"]), config)
    with start_in_thread(app) as srv:
        yield srv


def test_contract_row_and_columnar_formats_status_metadata_health(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.get("/healthz").json() == {"status": "ok", "models": ["qq", "sentiment"]}
        status = c.get("/v1/models/sentiment").json()
        assert status["model_version_status"][0]["state"] == "AVAILABLE"
        meta = c.get("/v1/models/sentiment/metadata").json()
        assert meta["metadata"]["serving"]["labels"] == ["neg", "pos"]
        texts = [t for t, _ in CHECK]
        rows = c.post("/v1/models/sentiment:predict", json={"instances": texts})
        assert rows.status_code == 200, rows.text
        predictions = rows.json()["predictions"]
        assert [p["label"] for p in predictions] == [label for _, label in CHECK]
        assert all(abs(sum(p["probabilities"]) - 1) < 1e-5 and len(p["logits"]) == 2 for p in predictions)
        cols = c.post("/v1/models/sentiment/versions/1:predict", json={"inputs": texts,
                                                                       "signature_name": "serving_default"})
        assert cols.json()["outputs"]["label"] == [p["label"] for p in predictions]
        assert cols.json()["outputs"]["probabilities"] == [p["probabilities"] for p in predictions]
        pair = c.post("/v1/models/qq:predict", json={"instances": [{"text": "a", "text_pair": "b"},
                                                                    {"text": "c", "text_pair": "d"}]})
        assert pair.status_code == 200 and len(pair.json()["predictions"]) == 2
        pair_cols = c.post("/v1/models/qq:predict", json={"inputs": {"text": ["a", "c"], "text_pair": ["b", "d"]}})
        assert pair_cols.json()["outputs"]["label_id"] == [p["label_id"] for p in pair.json()["predictions"]]


BAD = [  # (what, request kwargs, status, words in the error)
    ("malformed JSON", {"content": b'{"instances": ["a",'}, 400, "not valid JSON"),
    ("not an object", {"json": ["a"]}, 400, "JSON object"),
    ("neither field", {"json": {"texts": ["a"]}}, 400, "Unknown field"),
    ("both fields", {"json": {"instances": ["a"], "inputs": ["a"]}}, 400, "exactly one"),
    ("instances not a list", {"json": {"instances": "a text"}}, 400, "must be a list"),
    ("a number for a text", {"json": {"instances": ["ok", 3]}}, 400, "instances[1] must be a string"),
    ("a null text", {"json": {"inputs": [None]}}, 400, "must be a string"),
    ("empty instances", {"json": {"instances": []}}, 400, "empty"),
    ("empty inputs", {"json": {"inputs": []}}, 400, "empty"),
    ("wrong signature", {"json": {"instances": ["a"], "signature_name": "predict"}}, 400, "signature_name"),
    ("too many instances", {"json": {"instances": ["a"] * 10_000}}, 413, "limit is 64"),
    ("10 MB body", {"content": b'{"instances": ["' + b"a" * 10_000_000 + b'"]}'}, 413, "limit"),
    ("a very long text", {"json": {"instances": ["a" * 30_000]}}, 413, "characters"),
]


@pytest.mark.parametrize("what,kwargs,status,words", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_their_4xx_and_the_service_keeps_answering(server, what, kwargs, status, words):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        r = c.post("/v1/models/sentiment:predict", headers={"content-type": "application/json"}, **kwargs)
        assert r.status_code == status, r.text
        assert words in r.json()["error"]
        ok = c.post("/v1/models/sentiment:predict", json={"instances": [CHECK[0][0]]})
        assert ok.status_code == 200 and ok.json()["predictions"][0]["label"] == CHECK[0][1]


def test_unknown_model_path_method_and_pair_shape_errors(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.post("/v1/models/nope:predict", json={"instances": ["a"]})
        assert r.status_code == 404 and "Unknown model 'nope'" in r.json()["error"]
        assert c.get("/v1/models/nope").status_code == 404
        assert c.get("/v1/models/sentiment/versions/2").status_code == 404
        assert c.get("/nowhere").status_code == 404 and "error" in c.get("/nowhere").json()
        assert c.get("/v1/models/sentiment:predict").status_code == 405
        r = c.post("/v1/models/qq:predict", json={"instances": ["only one text"]})
        assert r.status_code == 400 and "text_pair" in r.json()["error"]
        r = c.post("/v1/models/qq:predict", json={"inputs": {"text": ["a", "b"], "text_pair": ["c"]}})
        assert r.status_code == 400 and "differ in length" in r.json()["error"]
        assert c.get("/healthz").status_code == 200


def test_api_key_rule(exports):
    with pytest.raises(ServingError, match="needs an API key"):
        check_bind("0.0.0.0", None)
    assert check_bind("0.0.0.0", KEY) == "0.0.0.0"
    with pytest.raises(ServingError, match="at least 8"):
        ServingConfig(api_key="short")
    with pytest.raises(ServingError, match="needs an API key"):
        start_in_thread(create_app({}, ServingConfig()), host="0.0.0.0")
    assert cli_main(["serve", str(exports["sentiment"]), "--host", "0.0.0.0"]) == 2  # refused before loading
    app = create_app({"sentiment": exports["sentiment"]}, ServingConfig(api_key=KEY))
    with start_in_thread(app) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        body = {"instances": [CHECK[1][0]]}
        for headers in ({}, {"Authorization": "Bearer wrong-key-123"}, {"X-API-Key": KEY[:-1]}):
            r = c.post("/v1/models/sentiment:predict", json=body, headers=headers)
            assert r.status_code == 401 and "API key" in r.json()["error"]
        assert c.get("/healthz").status_code == 401
        for headers in ({"Authorization": f"Bearer {KEY}"}, {"X-API-Key": KEY}):
            r = c.post("/v1/models/sentiment:predict", json=body, headers=headers)
            assert r.status_code == 200 and r.json()["predictions"][0]["label"] == CHECK[1][1]


def test_serve_command_line_flags_reach_the_config(exports, monkeypatch):
    import bertcourse.cli

    seen = {}
    monkeypatch.setattr(bertcourse.cli, "serve", lambda models, host, port, config: seen.update(
        models=models, port=port, config=config))
    assert cli_main(["serve", str(exports["sentiment"]), "--port", "8600", "--max-batch-size", "16"]) == 0
    assert seen["config"].group_by_length and seen["config"].batching and seen["config"].max_batch_size == 16
    assert cli_main(["serve", str(exports["sentiment"]), "--no-length-groups", "--max-wait-ms", "2"]) == 0
    assert not seen["config"].group_by_length and seen["config"].batching and seen["config"].max_wait_ms == 2
    assert cli_main(["serve", str(exports["sentiment"]), "--no-batching"]) == 0
    assert not seen["config"].batching and seen["port"] == 8501


def test_bounded_concurrent_load_every_answer_right_and_batched(server):
    clients, per_client = 16, 4

    async def client(http, i):
        labels = []
        for j in range(per_client):
            text, label = CHECK[(i + j) % len(CHECK)]
            r = await http.post(f"{server.url}/v1/models/sentiment:predict", json={"instances": [text]})
            assert r.status_code == 200, r.text
            labels.append((r.json()["predictions"][0]["label"], label))
        return labels

    async def run():
        async with httpx.AsyncClient(timeout=60) as http:
            before = (await http.get(f"{server.url}/v1/stats")).json()["models"]["sentiment"]
            results = await asyncio.gather(*(client(http, i) for i in range(clients)))
            after = (await http.get(f"{server.url}/v1/stats")).json()["models"]["sentiment"]
            return results, before, after

    results, before, after = asyncio.run(run())
    pairs = [p for r in results for p in r]
    assert len(pairs) == clients * per_client and all(got == want for got, want in pairs)
    requests = after["requests"] - before["requests"]
    batches = after["batches"] - before["batches"]
    assert requests == clients * per_client
    assert batches < requests and after["max_batch"] > 1, (batches, requests)  # concurrent requests were batched


def test_parse_model_arguments_refusals():
    with pytest.raises(ServingError, match="Two models"):
        parse_model_arguments(["a=x", "a=y"])
    with pytest.raises(ServingError, match="at least one"):
        parse_model_arguments([])
    assert json.dumps(parse_model_arguments(["/x/y/"])) == '{"y": "/x/y/"}'


# ----------------------------------------------------------------------------- the batcher, on a model without TF
def _post_all(url: str, bodies: list[dict], model: str = "echo") -> list[httpx.Response]:
    async def run():
        async with httpx.AsyncClient(timeout=30) as http:
            return await asyncio.gather(*(http.post(f"{url}/v1/models/{model}:predict", json=b) for b in bodies))
    return asyncio.run(run())


def _expected(texts: list[str]) -> list[dict]:
    """One request's predictions: [batch, pieces] outputs padded to its own longest text, not the batch's."""
    width = max(len(t.split()) for t in texts)
    out = []
    for t in texts:
        words = t.split()
        out.append({"label": t[::-1], "length": len(t), "piece": words + [""] * (width - len(words)),
                    "mask": [True] * len(words) + [False] * (width - len(words))})
    return out


def test_batches_never_exceed_max_size_and_every_request_gets_its_own_rows_in_order():
    rng = random.Random(0)
    bodies = []
    for i in range(30):
        texts = [" ".join(f"w{i}.{k}.{j}" for j in range(rng.randint(1, 30))) for k in range(rng.choice([1, 1, 3]))]
        bodies.append({"instances": texts})
    model = EchoModel()
    app = create_app({"echo": model}, ServingConfig(max_batch_size=8, max_wait_ms=50))
    with start_in_thread(app) as srv:
        responses = _post_all(srv.url, bodies)
    for body, r in zip(bodies, responses):
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == _expected(body["instances"])
    assert sum(len(b) for b in model.batches) == sum(len(b["instances"]) for b in bodies)
    assert max(len(b) for b in model.batches) <= 8
    assert max(len(b) for b in model.batches) > 3  # concurrent requests did share calls
    position = {t: (n, i) for n, batch in enumerate(model.batches) for i, t in enumerate(batch)}
    for body in bodies:  # a request is never split: its instances run in one call, in order
        places = [position[t] for t in body["instances"]]
        assert len({n for n, _ in places}) == 1 and [i for _, i in places] == list(range(places[0][1],
                                                                                        places[0][1] + len(places)))


def test_a_failing_request_gets_500_and_its_batch_mates_their_answers():
    texts = [f"sentence number {i}" for i in range(12)] + ["this one goes boom"]
    model = EchoModel()
    app = create_app({"echo": model}, ServingConfig(max_batch_size=len(texts), max_wait_ms=5_000))
    with start_in_thread(app) as srv:  # the batch starts when all 13 wait (max_batch_size), not on the clock
        responses = _post_all(srv.url, [{"instances": [t]} for t in texts])
        with httpx.Client(base_url=srv.url) as c:
            stats = c.get("/v1/stats").json()["models"]["echo"]
    assert len(model.batches[0]) > 1 and any("boom" in t for t in model.batches[0])  # it was batched with others
    for t, r in zip(texts, responses):
        if "boom" in t:
            assert r.status_code == 500 and "Inference failed" in r.json()["error"]
        else:
            assert r.status_code == 200 and r.json()["predictions"] == _expected([t])
    assert stats["errors"] == 1 and stats["requests"] == len(texts) - 1


def test_a_request_past_its_timeout_gets_504_and_is_not_run_later():
    model = EchoModel(delay_s=1.0)
    app = create_app({"echo": model}, ServingConfig(max_wait_ms=0, timeout_s=0.3))

    async def run(url):
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            slow = asyncio.create_task(http.post("/v1/models/echo:predict", json={"instances": ["slow"]}))
            await asyncio.sleep(0.1)  # the worker is busy with "slow" for 1 s: "queued" waits, then times out
            queued = await http.post("/v1/models/echo:predict", json={"instances": ["queued"]})
            slow = await slow
            await asyncio.sleep(1.0)
            after = await http.post("/v1/models/echo:predict", json={"instances": ["after"]})
            return slow, queued, after

    with start_in_thread(app) as srv:
        slow, queued, after = asyncio.run(run(srv.url))
    assert slow.status_code == 504 and queued.status_code == 504 and "No answer within 0.3 s" in queued.json()["error"]
    assert after.status_code == 200 and after.json()["predictions"] == _expected(["after"])
    assert ["queued"] not in model.batches and model.batches == [["slow"], ["after"]]


def test_without_batching_every_request_is_its_own_call():
    model = EchoModel()
    app = create_app({"echo": model}, ServingConfig(batching=False, max_wait_ms=50))
    bodies = [{"instances": [f"text {i}"] * (1 + i % 2)} for i in range(12)]
    with start_in_thread(app) as srv:
        responses = _post_all(srv.url, bodies)
    assert all(r.status_code == 200 and r.json()["predictions"] == _expected(b["instances"])
               for b, r in zip(bodies, responses))
    assert sorted(len(b) for b in model.batches) == sorted(len(b["instances"]) for b in bodies)


def test_split_by_length_is_the_cheapest_cut_into_runs_of_similar_length():
    rng = random.Random(1)

    def cost(groups, lengths, sizes, overhead):
        return sum(overhead + sum(sizes[i] for i in g) * -(-max(lengths[i] for i in g) // 8) * 8 for g in groups)

    for _ in range(40):
        n = rng.randint(1, 7)
        lengths, sizes = [rng.randint(3, 60) for _ in range(n)], [rng.randint(1, 3) for _ in range(n)]
        overhead = rng.choice([0, 8, 64, 500])
        groups = split_by_length(lengths, sizes, overhead)
        assert sorted(i for g in groups for i in g) == list(range(n))  # every job once, none split
        flat = [lengths[i] for g in groups for i in g]
        assert flat == sorted(flat)  # shortest first, runs of the sorted order
        order = sorted(range(n), key=lambda i: lengths[i])
        brute = min(cost([order[a:b] for a, b in zip((0,) + cuts, cuts + (n,))], lengths, sizes, overhead)
                    for k in range(n) for cuts in itertools.combinations(range(1, n), k))
        assert cost(groups, lengths, sizes, overhead) == brute
    assert split_by_length([12, 50, 14], [1, 1, 1], float("inf")) == [[0, 2, 1]]
    assert split_by_length([], [], 64) == []
    assert estimate_length({"text": ["Short one."]}, 0) < estimate_length({"text": ["A much longer sentence, with "
                                                                                     "more words in it."]}, 0)
    assert estimate_length({"q": ["a b"], "c": ["c d e"]}, 0) == 2 + 3 + 3  # [CLS] q [SEP] c [SEP]
    with pytest.raises(ServingError, match="group_overhead_tokens"):
        ServingConfig(group_overhead_tokens=-1)


def test_non_ascii_string_outputs_are_served_as_utf8(tmp_path):
    # labels (and QA answers, NER words) are UTF-8 strings: a non-ASCII one must not fail the batch
    from bertcourse.serving.server import ServedModel
    from bertcourse.text import FastWordPieceTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "café", "film"]
    pre = BertPreprocessor(FastWordPieceTokenizer(vocab), sequence_length=8)
    labels = ["négatif", "positif ✓"]
    clf = BertClassifier(BertBackbone("tiny", vocab_size=len(vocab)), 2, preprocessor=pre, labels=labels)
    served = ServedModel("fr", export_task(clf, tmp_path / "fr"))
    out = served.run({"text": ["café film", "film"]})
    assert set(out["label"].tolist()) <= set(labels) and out["label"].shape == (2,)
    app = create_app({"fr": served}, ServingConfig())
    with start_in_thread(app) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        reply = c.post("/v1/models/fr:predict", json={"instances": ["café film"]})
        assert reply.status_code == 200, reply.text
        assert reply.json()["predictions"][0]["label"] in labels
