"""An HTTP service over exported models (``bertcourse serve OUT...``), in TF Serving's REST format.

FastAPI + uvicorn; one or more SavedModels written by :func:`bertcourse.serving.export.export_task`,
each under its name (the folder's name, or ``NAME=PATH``). Clients written for TF Serving work:

* ``POST /v1/models/NAME:predict`` (also ``/v1/models/NAME/versions/1:predict``) with
  ``{"instances": ["a text", ...]}`` (row format; a pair model takes
  ``{"instances": [{"text": "a", "text_pair": "b"}, ...]}``) -> ``{"predictions": [{"label": ...,
  "label_id": ..., "probabilities": [...], "logits": [...]}, ...]}``; or
  ``{"inputs": ["a text", ...]}`` / ``{"inputs": {"text": [...], "text_pair": [...]}}`` (columnar)
  -> ``{"outputs": {"label": [...], ...}}``. ``"signature_name"`` may be given (``serving_default``).
* ``GET /v1/models/NAME`` -> ``{"model_version_status": [{"version": "1", "state": "AVAILABLE", ...}]}``;
  ``GET /v1/models/NAME/metadata`` -> the signature and ``serving.json`` (labels, sequence length...).
* ``GET /healthz`` -> ``{"status": "ok", "models": [...]}``; ``GET /v1/stats`` -> requests, batches,
  mean batch size and seconds spent in model calls (``model_s``) per model.

Dynamic batching: concurrent requests to one model wait in a queue; an inference thread (not the event
loop, which only parses and answers HTTP meanwhile) takes them as soon as ``max_batch_size`` instances
wait or the oldest has waited ``max_wait_ms`` (so after a long batch the next starts at once), cuts
them into groups of similar length (a batch is padded to its longest row: a short sentence batched
with a long one pays for the long one's width; see :func:`split_by_length`), runs each group as one
call (TensorFlow uses the cores inside each call; ``inference_threads`` calls at a time, all models
together) and hands each request its own rows back; a request is never split, and when a batch
fails each request is retried alone, so only a request that fails on its own gets the 500.
``batching=False`` runs every request on its own (batch size = its instances), same code path.
Outputs padded to the batch's longest row (``[batch, pieces]``, marked by a ``mask`` output) are cut
to the request's own longest, so an answer does not depend on what it was batched with.

Limits and errors, all JSON ``{"error": "..."}``:

=========================================================  ======
bad JSON, not an object, no/both ``instances``/``inputs``,   400
wrong types (a number for a text, a missing ``text_pair``),
empty ``instances``, unknown ``signature_name``
missing or wrong API key                                     401
unknown model or path                                        404
wrong method                                                 405
body over ``max_body_bytes`` (default 1 MiB)                 413
more than ``max_instances`` instances (default 256) or a     413
text over ``max_text_chars`` (default 20,000)
queue full (``max_queue`` instances waiting)                 503
not answered within ``timeout_s`` (default 30 s)             504
=========================================================  ======

Binding: ``127.0.0.1`` by default. Any other host (``0.0.0.0``, a LAN address) requires an API key
(``api_key=`` / ``--api-key`` / ``BERTCOURSE_API_KEY``); with a key set, every request must carry it
(``Authorization: Bearer KEY`` or ``X-API-Key: KEY``) or gets 401. A key is compared in constant time.
This is not TLS: put a reverse proxy that terminates HTTPS in front of a public address.

>>> config = ServingConfig(max_batch_size=16, max_wait_ms=2.0)
>>> config.max_batch_size, config.batching
(16, True)
>>> check_bind("127.0.0.1", None), check_bind("0.0.0.0", "s3cret")
('127.0.0.1', '0.0.0.0')
>>> check_bind("0.0.0.0", None)
Traceback (most recent call last):
...
bertcourse.serving.server.ServingError: Binding 0.0.0.0 (not this machine's loopback) needs an API key: ...
>>> parse_model_arguments(["sentiment=exports/sst", "exports/ner"])
{'sentiment': 'exports/sst', 'ner': 'exports/ner'}
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hmac
import json
import os
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the tokenizer's ops the exported graphs use
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bertcourse.errors import BertcourseError
from bertcourse.serving.export import read_serving_metadata

__all__ = ["ServingConfig", "ServingError", "ServedModel", "create_app", "serve", "check_bind",
           "parse_model_arguments", "LOOPBACK_HOSTS", "API_KEY_ENV", "start_in_thread"]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
API_KEY_ENV = "BERTCOURSE_API_KEY"


class ServingError(BertcourseError, ValueError):
    """A serving setting or model folder that cannot work (the message says what to do)."""


@dataclasses.dataclass(frozen=True)
class ServingConfig:
    """The service's limits and batching (see the module doc for what each refusal returns).

    ``group_by_length``: cut a gathered batch into groups of similar length, at a cost of
    ``group_overhead_tokens`` per extra model call (see :func:`split_by_length`; about what one call
    of a MiniLM-sized model costs beyond its rows on a 2-core CPU). ``inference_threads``: model calls
    that may run at a time (each uses TensorFlow's intra-op threads).
    """

    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    batching: bool = True
    max_body_bytes: int = 1 << 20
    max_instances: int = 256
    max_text_chars: int = 20_000
    max_queue: int = 4096
    timeout_s: float = 30.0
    api_key: str | None = None
    group_by_length: bool = True
    group_overhead_tokens: float = 64.0
    inference_threads: int = 1

    def __post_init__(self):
        for name in ("max_batch_size", "max_body_bytes", "max_instances", "max_text_chars", "max_queue",
                     "inference_threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ServingError(f"{name} must be a positive int, got {value!r}.")
        if not self.max_wait_ms >= 0 or not self.timeout_s > 0:
            raise ServingError(f"max_wait_ms must be >= 0 and timeout_s > 0, got {self.max_wait_ms}, "
                               f"{self.timeout_s}.")
        if not self.group_overhead_tokens >= 0:
            raise ServingError(f"group_overhead_tokens must be >= 0, got {self.group_overhead_tokens}.")
        if self.api_key is not None and len(self.api_key) < 8:
            raise ServingError("An API key must have at least 8 characters.")


class _RequestError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def check_bind(host: str, api_key: str | None) -> str:
    """``host`` if it may be bound: a loopback address always, any other only with an API key."""
    if host not in LOOPBACK_HOSTS and not api_key:
        raise ServingError(f"Binding {host} (not this machine's loopback) needs an API key: pass --api-key "
                           f"or set {API_KEY_ENV}, and send it as 'Authorization: Bearer KEY'. "
                           f"Without one, serve on 127.0.0.1.")
    return host


def parse_model_arguments(items: list[str]) -> dict[str, str]:
    """``["NAME=PATH" | "PATH", ...]`` -> ``{name: path}`` (a bare path is named after its folder)."""
    models: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = Path(item.rstrip("/")).name, item
        if not name or "/" in name or ":" in name:
            raise ServingError(f"Model name {name!r} (from {item!r}) must be a plain name: NAME=PATH.")
        if name in models:
            raise ServingError(f"Two models are named {name!r}: give one a name with NAME=PATH.")
        models[name] = path
    if not models:
        raise ServingError("Give at least one exported model folder (`bertcourse export RUN OUT` writes one).")
    return models


def _decode_utf8(values: np.ndarray) -> np.ndarray:
    """Bytes from a string tensor -> Python strings, any rank (``astype(str)`` decodes ASCII only: an
    answer such as "Café Zürich" would fail its whole batch).

    >>> _decode_utf8(np.array([[b"caf\\xc3\\xa9"], [b""]], dtype=object)).tolist()
    [['café'], ['']]
    """
    return np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(values) if values.size else \
        values.astype(object)


class ServedModel:
    """One exported model: its metadata and its serving signature (called from one thread)."""

    def __init__(self, name: str, path: str | os.PathLike):
        self.name, self.path = name, Path(path)
        self.metadata = read_serving_metadata(self.path)
        try:
            self._loaded = tf.saved_model.load(str(self.path))
        except Exception as err:  # a truncated or foreign SavedModel raises many types
            raise ServingError(f"{self.path} cannot be loaded as a SavedModel ({type(err).__name__}: "
                               f"{str(err).splitlines()[0] if str(err) else ''}).") from err
        signature = self.metadata.get("signature", "serving_default")
        self.signature_name = signature
        self.function = self._loaded.signatures[signature]
        self.inputs: list[str] = list(self.metadata["inputs"])
        self.outputs: list[str] = list(self.metadata["outputs"])
        specs = self.function.structured_outputs  # [batch, pieces] outputs: a dynamic second axis
        self.ragged_outputs = {k for k, v in specs.items() if v.shape.rank and v.shape.rank >= 2
                               and v.shape[1] is None}
        self.run({name: ["warm up"] for name in self.inputs})  # the first call pays for graph set-up

    def run(self, columns: dict[str, list[str]]) -> dict[str, np.ndarray]:
        """Named columns of texts -> the signature's outputs as NumPy (strings decoded)."""
        out = self.function(**{k: tf.constant(v, tf.string) for k, v in columns.items()})
        return {k: (_decode_utf8(v.numpy()) if v.dtype == tf.string else v.numpy()) for k, v in out.items()}

    def rows(self, outputs: dict[str, np.ndarray], start: int, size: int) -> dict[str, np.ndarray]:
        """Rows ``start:start + size`` of a batch's ``outputs``: one request's answer. Outputs padded along
        a second axis to the batch's longest row (``[batch, pieces]``, with a ``mask`` output marking the
        real positions) are cut to this request's own longest row, so an answer does not depend on what
        it was batched with."""
        part = {k: v[start:start + size] for k, v in outputs.items()}
        if self.ragged_outputs and "mask" in part and part["mask"].ndim == 2:
            real = part["mask"].any(axis=0)
            width = int(np.flatnonzero(real)[-1]) + 1 if real.any() else 0
            part = {k: (v[:, :width] if k in self.ragged_outputs else v) for k, v in part.items()}
        return part

    def status(self) -> dict[str, Any]:
        return {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}}]}

    def describe(self) -> dict[str, Any]:
        inputs = {k: {"dtype": "DT_STRING", "tensor_shape": {"dim": [{"size": "-1"}]}, "name": k}
                  for k in self.inputs}
        return {"model_spec": {"name": self.name, "version": "1", "signature_name": self.signature_name},
                "metadata": {"signature_def": {"signature_def": {self.signature_name: {"inputs": inputs,
                                                                                        "outputs": self.outputs}}},
                             "serving": self.metadata}}


_WORD = re.compile(r"\w+|[^\w\s]")


def estimate_length(columns: dict[str, list[str]], row: int) -> int:
    """A cheap stand-in for the WordPiece length of instance ``row`` (words and punctuation marks of all its
    inputs, plus [CLS] and a [SEP] per input): what length grouping sorts by, before the graph tokenizes.

    >>> estimate_length({"text": ["A fine film, really."]}, 0)  # [CLS] a fine film , really . [SEP]
    8
    """
    return sum(len(_WORD.findall(texts[row])) + 1 for texts in columns.values()) + 1


def split_by_length(lengths: list[int], sizes: list[int], overhead_tokens: float,
                    multiple: int = 8) -> list[list[int]]:
    """Indices of jobs (``lengths[i]``: its longest instance, ``sizes[i]``: its instances) cut into groups
    of similar length, each run as one batch: a batch is padded to its longest row (rounded up to
    ``multiple``), so a short sentence batched with a long one pays for the long one's width. The cut
    minimises ``sum(overhead_tokens + instances * padded width)`` over the groups (``overhead_tokens``: the
    fixed cost of one model call, in tokens); groups come shortest first, a job is never split, and
    ``overhead_tokens=inf`` keeps one group.

    >>> split_by_length([12, 50, 14, 48], [1, 1, 1, 1], overhead_tokens=16)
    [[0, 2], [3, 1]]
    >>> split_by_length([12, 50, 14, 48], [1, 1, 1, 1], overhead_tokens=float("inf"))
    [[0, 2, 3, 1]]
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    if len(order) < 2 or overhead_tokens == float("inf"):
        return [order] if order else []
    width = [-(-lengths[i] // multiple) * multiple for i in order]
    best = [0.0] + [float("inf")] * len(order)  # best[j]: the cheapest cut of the first j jobs
    cut = [0] * (len(order) + 1)
    for j in range(1, len(order) + 1):
        rows = 0
        for i in range(j, 0, -1):  # the last group is order[i-1:j]; its width is width[j-1]
            rows += sizes[order[i - 1]]
            cost = best[i - 1] + overhead_tokens + rows * width[j - 1]
            if cost < best[j]:
                best[j], cut[j] = cost, i - 1
    groups, j = [], len(order)
    while j > 0:
        groups.append(order[cut[j]:j])
        j = cut[j]
    return groups[::-1]


@dataclasses.dataclass(eq=False)
class _Job:
    columns: dict[str, list[str]]
    size: int
    length: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    enqueued: float
    abandoned: bool = False  # timed out or the client went away: the worker skips it


def _settle(settlements: list[tuple[asyncio.Future, Any, BaseException | None]]) -> None:
    for future, value, error in settlements:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


class _Batcher:
    """The queue of one model and its inference thread, which turns waiting requests into batches.

    The thread (not the event loop) gathers: it takes the waiting requests as soon as ``max_batch_size``
    instances wait or the oldest has waited ``max_wait_ms`` (TF Serving's rule), runs them (cut into
    groups of similar length, see :func:`split_by_length`) and hands every request its own rows back
    through the loop. The event loop only parses and answers HTTP, so it overlaps with the model. One
    lock shared by all models keeps one model call at a time (TensorFlow uses every core in each).
    """

    def __init__(self, model: ServedModel, config: ServingConfig, compute_slots: threading.Semaphore):
        self.model, self.config, self.compute_slots = model, config, compute_slots
        self._stats_lock = threading.Lock()
        self.stats = {"requests": 0, "instances": 0, "batches": 0, "max_batch": 0, "errors": 0, "model_s": 0.0}
        self._jobs: collections.deque[_Job] = collections.deque()
        self._queued = 0  # instances in _jobs
        self._cv = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []

    @property
    def waiting(self) -> int:
        return self._queued

    def start(self) -> None:
        self._stopping = False
        self._threads = [threading.Thread(target=self._work, name=f"inference-{self.model.name}-{i}", daemon=True)
                         for i in range(self.config.inference_threads)]
        for thread in self._threads:
            thread.start()

    async def stop(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        for thread in self._threads:
            await asyncio.get_running_loop().run_in_executor(None, thread.join, 30)

    async def submit(self, columns: dict[str, list[str]], size: int) -> dict[str, np.ndarray]:
        loop = asyncio.get_running_loop()
        length = max(estimate_length(columns, i) for i in range(size)) if self.config.group_by_length else 0
        job = _Job(columns, size, length, loop, loop.create_future(), time.monotonic())
        with self._cv:
            if self._queued + size > self.config.max_queue:
                raise _RequestError(503, f"Model {self.model.name!r} is overloaded ({self._queued} instances "
                                         f"waiting); retry later.")
            self._jobs.append(job)
            self._queued += size
            self._cv.notify()
        timer = loop.call_later(self.config.timeout_s, _settle, [(job.future, None, _RequestError(
            504, f"No answer within {self.config.timeout_s:g} s; the service is busy."))])
        try:
            return await job.future
        except BaseException:  # 504, or the client went away (cancelled): not worth a model call
            job.abandoned = True
            raise
        finally:
            timer.cancel()

    def _take(self) -> list[_Job] | None:
        """The next batch of jobs (at most ``max_batch_size`` instances, one job if larger, oldest first);
        ``None`` once stopped."""
        config = self.config
        with self._cv:
            while True:
                while self._jobs and self._jobs[0].abandoned:
                    self._queued -= self._jobs.popleft().size
                if self._jobs:
                    break
                if self._stopping:
                    return None
                self._cv.wait()
            if config.batching:
                deadline = self._jobs[0].enqueued + config.max_wait_ms / 1000
                while self._queued < config.max_batch_size and not self._stopping:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
            first = self._jobs.popleft()
            jobs, size = [first], first.size
            while config.batching and self._jobs and size + self._jobs[0].size <= config.max_batch_size:
                job = self._jobs.popleft()
                if not job.abandoned:
                    jobs.append(job)
                    size += job.size
                else:
                    self._queued -= job.size
            self._queued -= size
            return jobs

    def _work(self) -> None:
        overhead = self.config.group_overhead_tokens if self.config.group_by_length else float("inf")
        while True:
            jobs = self._take()
            if jobs is None:
                return
            groups = split_by_length([j.length for j in jobs], [j.size for j in jobs], overhead)
            for group in groups:
                self._run([jobs[i] for i in group])

    def _run(self, jobs: list[_Job]) -> None:
        jobs = [j for j in jobs if not j.abandoned]
        if not jobs:
            return
        columns = {k: [s for j in jobs for s in j.columns[k]] for k in self.model.inputs}
        try:
            with self.compute_slots:
                started = time.perf_counter()
                outputs = self.model.run(columns)
                took = time.perf_counter() - started
        except Exception as err:  # noqa: BLE001  one bad request must not stop the worker or fail the others
            if len(jobs) > 1:  # which request broke it? each one alone: only that one gets the 500
                for job in jobs:
                    self._run([job])
                return
            with self._stats_lock:
                self.stats["errors"] += 1
            error = _RequestError(500, f"Inference failed: {type(err).__name__}.")
            _deliver([(j.loop, j.future, None, error) for j in jobs])
            return
        n = sum(j.size for j in jobs)
        with self._stats_lock:
            self.stats["batches"] += 1
            self.stats["requests"] += len(jobs)
            self.stats["instances"] += n
            self.stats["max_batch"] = max(self.stats["max_batch"], n)
            self.stats["model_s"] += took
        settlements, start = [], 0
        for job in jobs:
            settlements.append((job.loop, job.future, self.model.rows(outputs, start, job.size), None))
            start += job.size
        _deliver(settlements)


def _deliver(settlements: list[tuple[asyncio.AbstractEventLoop, asyncio.Future, Any, BaseException | None]]) -> None:
    """Hand results to their event loops from the inference thread: one wake-up per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list] = {}
    for loop, future, value, error in settlements:
        by_loop.setdefault(loop, []).append((future, value, error))
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, items)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass


# ----------------------------------------------------------------------------- request parsing
def _texts(value: Any, what: str, config: ServingConfig) -> list[str]:
    if not isinstance(value, list):
        raise _RequestError(400, f"{what} must be a list of strings, got {type(value).__name__}.")
    for i, s in enumerate(value):
        if not isinstance(s, str):
            raise _RequestError(400, f"{what}[{i}] must be a string, got {type(s).__name__}.")
        if len(s) > config.max_text_chars:
            raise _RequestError(413, f"{what}[{i}] has {len(s):,} characters; the limit is "
                                     f"{config.max_text_chars:,}.")
    return value


def parse_predict_request(body: Any, inputs: list[str], config: ServingConfig) -> tuple[dict, int, bool]:
    """A decoded JSON body -> ``(columns, number of instances, row_format)``; a :class:`_RequestError`
    (status + message) for anything that is not a well-formed request for these ``inputs``."""
    if not isinstance(body, dict):
        raise _RequestError(400, f"The body must be a JSON object with 'instances' or 'inputs', got "
                                 f"{type(body).__name__}.")
    unknown = sorted(set(body) - {"instances", "inputs", "signature_name"})
    if unknown:
        raise _RequestError(400, f"Unknown field(s) {unknown}: send 'instances' (rows) or 'inputs' (columns).")
    signature = body.get("signature_name", "serving_default")
    if signature != "serving_default":
        raise _RequestError(400, f"Unknown signature_name {signature!r}; this model has 'serving_default'.")
    if ("instances" in body) == ("inputs" in body):
        raise _RequestError(400, "Send exactly one of 'instances' (a list of rows) or 'inputs' (columns).")
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list):
            raise _RequestError(400, f"'instances' must be a list, got {type(rows).__name__}.")
        if not rows:
            raise _RequestError(400, "'instances' is empty: send at least one text.")
        if len(rows) > config.max_instances:
            raise _RequestError(413, f"{len(rows):,} instances in one request; the limit is "
                                     f"{config.max_instances:,}: split the request.")
        columns: dict[str, list] = {k: [] for k in inputs}
        for i, row in enumerate(rows):
            if isinstance(row, dict):
                if set(row) != set(inputs):
                    raise _RequestError(400, f"instances[{i}] has keys {sorted(row)}; this model takes "
                                             f"{inputs}.")
                for k in inputs:
                    columns[k].append(row[k])
            elif len(inputs) == 1:
                columns[inputs[0]].append(row)
            else:
                raise _RequestError(400, f"instances[{i}] must be an object with keys {inputs} "
                                         f"(a sentence-pair model).")
        return {k: _texts(v, f"instances[].{k}" if len(inputs) > 1 else "instances", config)
                for k, v in columns.items()}, len(rows), True
    cols = body["inputs"]
    if not isinstance(cols, dict):
        if len(inputs) != 1:
            raise _RequestError(400, f"'inputs' must be an object with keys {inputs} (a sentence-pair model).")
        cols = {inputs[0]: cols}
    if set(cols) != set(inputs):
        raise _RequestError(400, f"'inputs' has keys {sorted(cols)}; this model takes {inputs}.")
    columns = {k: _texts(cols[k], f"inputs.{k}", config) for k in inputs}
    sizes = {len(v) for v in columns.values()}
    if len(sizes) != 1:
        raise _RequestError(400, f"The input columns differ in length: {[len(v) for v in columns.values()]}.")
    n = sizes.pop()
    if n == 0:
        raise _RequestError(400, "'inputs' is empty: send at least one text.")
    if n > config.max_instances:
        raise _RequestError(413, f"{n:,} instances in one request; the limit is {config.max_instances:,}: "
                                 f"split the request.")
    return columns, n, False


def _jsonable(outputs: dict[str, np.ndarray], row_format: bool, size: int) -> dict[str, Any]:
    lists = {k: v.tolist() for k, v in outputs.items()}
    if row_format:
        return {"predictions": [{k: lists[k][i] for k in lists} for i in range(size)]}
    return {"outputs": lists}


# ----------------------------------------------------------------------------- the app
def create_app(models: dict[str, str | os.PathLike] | dict[str, ServedModel],
               config: ServingConfig | None = None) -> FastAPI:
    """The FastAPI app over ``{name: export folder}`` (models are loaded now, so a bad folder fails
    before anything is bound)."""
    config = config or ServingConfig()
    served = {name: ServedModel(name, m) if isinstance(m, (str, os.PathLike)) else m for name, m in models.items()}
    compute_slots = threading.Semaphore(config.inference_threads)  # model calls at a time, all models
    batchers: dict[str, _Batcher] = {}

    async def lifespan(app):
        for name, model in served.items():
            batchers[name] = _Batcher(model, config, compute_slots)
            batchers[name].start()
        yield
        for batcher in batchers.values():
            await batcher.stop()

    app = FastAPI(title="bertcourse serving", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.config, app.state.models, app.state.batchers = config, served, batchers

    def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    async def authenticate(request: Request, call_next):
        if config.api_key is not None:
            given = request.headers.get("x-api-key")
            auth = request.headers.get("authorization", "")
            if given is None and auth[:7].lower() == "bearer ":
                given = auth[7:].strip()
            if given is None or not hmac.compare_digest(given.encode(), config.api_key.encode()):
                return error(401, "Missing or wrong API key: send 'Authorization: Bearer KEY'.",
                             {"WWW-Authenticate": "Bearer"})
        return await call_next(request)

    if config.api_key is not None:  # no middleware at all without a key: it costs time on every request
        app.middleware("http")(authenticate)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = {404: f"No such path {request.url.path}; see /v1/models/NAME:predict.",
                   405: f"Method {request.method} is not allowed on {request.url.path}."}.get(exc.status_code,
                                                                                               str(exc.detail))
        return error(exc.status_code, message)

    def request_path(name: str) -> str:
        return f"/v1/models/{name}"

    def model_or_404(name: str) -> ServedModel:
        if name not in served:
            raise _RequestError(404, f"Unknown model {name!r}; serving {sorted(served)}.")
        return served[name]

    @app.exception_handler(_RequestError)
    async def request_error(request: Request, exc: _RequestError):
        return error(exc.status, exc.message)

    @app.get("/healthz")
    async def health():
        return {"status": "ok", "models": sorted(served)}

    @app.get("/v1/stats")
    async def stats():
        out = {}
        for name, b in batchers.items():
            s = dict(b.stats)
            s["mean_batch"] = s["instances"] / s["batches"] if s["batches"] else 0.0
            s["waiting"] = b.waiting
            out[name] = s
        return {"batching": config.batching, "max_batch_size": config.max_batch_size,
                "max_wait_ms": config.max_wait_ms, "models": out}

    @app.get("/v1/models/{name}")
    @app.get("/v1/models/{name}/versions/{version}")
    async def status(name: str, version: str = "1"):
        if name.endswith(":predict"):
            raise _RequestError(405, f"{request_path(name)} takes POST (a JSON body), not GET.")
        model = model_or_404(name)
        if version != "1":
            raise _RequestError(404, f"Model {name!r} has version 1 only, not {version!r}.")
        return model.status()

    @app.get("/v1/models/{name}/metadata")
    async def metadata(name: str):
        return model_or_404(name).describe()

    async def predict(request: Request, name: str):
        model = model_or_404(name)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > config.max_body_bytes:
            raise _RequestError(413, f"The body has {int(declared):,} bytes; the limit is "
                                     f"{config.max_body_bytes:,}.")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > config.max_body_bytes:
                raise _RequestError(413, f"The body is over the limit of {config.max_body_bytes:,} bytes.")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as err:
            raise _RequestError(400, f"The body is not valid JSON ({err}).") from None
        columns, size, rows = parse_predict_request(data, model.inputs, config)
        outputs = await batchers[name].submit(columns, size)
        return JSONResponse(_jsonable(outputs, rows, size))

    async def predict_route(request: Request):
        version = request.path_params.get("version", "1")
        if version != "1":
            raise _RequestError(404, f"Model {request.path_params['name']!r} has version 1 only, not {version!r}.")
        return await predict(request, request.path_params["name"])

    # plain Starlette routes (the body is read raw): FastAPI's parameter solving would cost time on every request
    app.router.add_route("/v1/models/{name}:predict", predict_route, methods=["POST"])
    app.router.add_route("/v1/models/{name}/versions/{version}:predict", predict_route, methods=["POST"])
    return app


def serve(models: dict[str, str | os.PathLike], host: str = "127.0.0.1", port: int = 8501,
          config: ServingConfig | None = None, log_level: str = "info") -> None:
    """Load ``models`` and serve them until interrupted (``bertcourse serve``). 8501: TF Serving's REST port."""
    config = config or ServingConfig(api_key=os.environ.get(API_KEY_ENV) or None)
    check_bind(host, config.api_key)
    app = create_app(models, config)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_keep_alive=30)


class _ThreadServer:
    """A uvicorn server running in a thread (tests, benchmarks, notebooks): ``.url``, ``.stop()``."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", log_level: str = "warning"):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, 0))
        self.port = self.socket.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def start(self, timeout: float = 30.0) -> "_ThreadServer":
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise ServingError("The server did not start.")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()

    def __enter__(self) -> "_ThreadServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_in_thread(app: FastAPI, host: str = "127.0.0.1") -> _ThreadServer:
    """Serve ``app`` on a free port of ``host`` in a background thread; returns an object with ``url``,
    ``port`` and ``stop()`` (also a context manager). For tests, benchmarks and notebooks."""
    check_bind(host, app.state.config.api_key)
    return _ThreadServer(app, host).start()
