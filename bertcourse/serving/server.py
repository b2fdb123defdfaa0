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
  mean batch size per model.

Dynamic batching: concurrent requests to one model wait in a queue; a worker takes requests until
``max_batch_size`` instances are gathered or ``max_wait_ms`` has passed since the first, runs them as
one batch in a single inference thread (TensorFlow uses the cores inside each call) and hands each
request its rows back. ``batching=False`` runs every request on its own (batch size = its instances).

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
import dataclasses
import hmac
import json
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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
    """The service's limits and batching (see the module doc for what each refusal returns)."""

    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    batching: bool = True
    max_body_bytes: int = 1 << 20
    max_instances: int = 256
    max_text_chars: int = 20_000
    max_queue: int = 4096
    timeout_s: float = 30.0
    api_key: str | None = None

    def __post_init__(self):
        for name in ("max_batch_size", "max_body_bytes", "max_instances", "max_text_chars", "max_queue"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ServingError(f"{name} must be a positive int, got {value!r}.")
        if not self.max_wait_ms >= 0 or not self.timeout_s > 0:
            raise ServingError(f"max_wait_ms must be >= 0 and timeout_s > 0, got {self.max_wait_ms}, "
                               f"{self.timeout_s}.")
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
        self.run({name: ["warm up"] for name in self.inputs})  # the first call pays for graph set-up

    def run(self, columns: dict[str, list[str]]) -> dict[str, np.ndarray]:
        """Named columns of texts -> the signature's outputs as NumPy (strings decoded)."""
        out = self.function(**{k: tf.constant(v, tf.string) for k, v in columns.items()})
        return {k: (v.numpy().astype(str) if v.dtype == tf.string else v.numpy()) for k, v in out.items()}

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


@dataclasses.dataclass
class _Job:
    columns: dict[str, list[str]]
    size: int
    future: asyncio.Future


class _Batcher:
    """The queue of one model and the worker that turns waiting requests into batches."""

    def __init__(self, model: ServedModel, config: ServingConfig, executor: ThreadPoolExecutor):
        self.model, self.config, self.executor = model, config, executor
        self.queue: asyncio.Queue[_Job] = asyncio.Queue()
        self.waiting = 0
        self.stats = {"requests": 0, "instances": 0, "batches": 0, "max_batch": 0, "errors": 0}
        self._carry: _Job | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._work())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def submit(self, columns: dict[str, list[str]], size: int) -> dict[str, np.ndarray]:
        if self.waiting + size > self.config.max_queue:
            raise _RequestError(503, f"Model {self.model.name!r} is overloaded ({self.waiting} instances "
                                     f"waiting); retry later.")
        job = _Job(columns, size, asyncio.get_running_loop().create_future())
        self.waiting += size
        self.queue.put_nowait(job)
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), self.config.timeout_s)
        except asyncio.TimeoutError:
            job.future.cancel()
            raise _RequestError(504, f"No answer within {self.config.timeout_s:g} s; the service is busy.") \
                from None

    async def _next(self, timeout: float | None) -> _Job | None:
        if self._carry is not None:
            job, self._carry = self._carry, None
            return job
        if timeout is None:
            return await self.queue.get()
        if timeout <= 0:
            return self.queue.get_nowait() if not self.queue.empty() else None
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return None

    async def _gather(self) -> list[_Job]:
        loop = asyncio.get_running_loop()
        first = await self._next(None)
        jobs, size = [first], first.size
        if not self.config.batching:
            return jobs
        deadline = loop.time() + self.config.max_wait_ms / 1000
        while size < self.config.max_batch_size:
            job = await self._next(deadline - loop.time())
            if job is None:
                break
            if size + job.size > self.config.max_batch_size:
                self._carry = job  # starts the next batch
                break
            jobs.append(job)
            size += job.size
        return jobs

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._gather()
            self.waiting -= sum(j.size for j in jobs)
            jobs = [j for j in jobs if not j.future.done()]  # timed out while waiting
            if not jobs:
                continue
            columns = {k: [s for j in jobs for s in j.columns[k]] for k in self.model.inputs}
            try:
                outputs = await loop.run_in_executor(self.executor, self.model.run, columns)
            except Exception as err:  # noqa: BLE001  one bad batch must not stop the worker
                self.stats["errors"] += 1
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(_RequestError(500, f"Inference failed: {type(err).__name__}."))
                continue
            n = sum(j.size for j in jobs)
            self.stats["batches"] += 1
            self.stats["requests"] += len(jobs)
            self.stats["instances"] += n
            self.stats["max_batch"] = max(self.stats["max_batch"], n)
            start = 0
            for job in jobs:
                part = {k: v[start:start + job.size] for k, v in outputs.items()}
                start += job.size
                if not job.future.done():
                    job.future.set_result(part)


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
    served = {name: m if isinstance(m, ServedModel) else ServedModel(name, m) for name, m in models.items()}
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
    batchers: dict[str, _Batcher] = {}

    async def lifespan(app):
        for name, model in served.items():
            batchers[name] = _Batcher(model, config, executor)
            batchers[name].start()
        yield
        for batcher in batchers.values():
            await batcher.stop()
        executor.shutdown(wait=False, cancel_futures=True)

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

    @app.post("/v1/models/{name}:predict")
    async def predict_latest(request: Request, name: str):
        return await predict(request, name)

    @app.post("/v1/models/{name}/versions/{version}:predict")
    async def predict_version(request: Request, name: str, version: str):
        if version != "1":
            raise _RequestError(404, f"Model {name!r} has version 1 only, not {version!r}.")
        return await predict(request, name)

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
