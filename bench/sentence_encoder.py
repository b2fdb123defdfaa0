"""Benchmark: SentenceEncoder.encode (all-MiniLM-L6-v2) vs the reference (transformers + PyTorch, CPU).

    .venv/bin/python bench/sentence_encoder.py                         # 10,000 Austen sentences, batch 32, 2 threads
    .venv/bin/python bench/sentence_encoder.py --n 2000 --ref-python /tmp/refvenv/bin/python

Same work on both sides: the first ``--n`` sentences of the course corpus (Austen, then Moby Dick) of
3 to 80 words, sorted by length and cut into batches of ``--batch-size`` (sentence-transformers sorts
the same way), tokenized, padded to the batch's longest (ours: rounded up to a multiple of 8),
max_seq_length 256, mean pooling + L2 normalisation, float32, ``--threads`` threads (TF intra-op /
``torch.set_num_threads``; inter-op 1). Timed: the whole ``encode`` call, tokenization included,
after a warm-up on 512 of the sentences. Ours runs with XLA off and on (``jit_compile=True``: XLA
compiles once per padded length, so the first pass also reports that cost).

The reference runs in a subprocess of a separate virtual environment that has torch and transformers
(never the course's own): ``python3 -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install torch==2.13.0
'transformers>=4.40,<5'``. Without it the reference column is skipped. The two embeddings are also
compared (max |diff|).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]  # bench/tokenizers.py shadows
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_REFERENCE = r"""
import json, sys, time
import numpy as np, torch
from transformers import AutoModel, AutoTokenizer
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"]); torch.set_num_interop_threads(1)
sentences = json.load(open(args["sentences"], encoding="utf-8"))
tok = AutoTokenizer.from_pretrained(args["model_dir"])
model = AutoModel.from_pretrained(args["model_dir"]).float().eval()

def encode(texts, bs):
    order = np.argsort([-len(t) for t in texts], kind="stable")      # sentence-transformers' sort
    out = np.empty((len(texts), model.config.hidden_size), np.float32)
    with torch.inference_mode():
        for i in range(0, len(texts), bs):
            rows = order[i:i + bs]
            enc = tok([texts[j] for j in rows], padding=True, truncation=True, max_length=256, return_tensors="pt")
            h = model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
            e = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), p=2, dim=1)
            out[rows] = e.numpy()
    return out

encode(sentences[:512], args["batch_size"])
start = time.perf_counter()
emb = encode(sentences, args["batch_size"])
seconds = time.perf_counter() - start
np.save(args["out"], emb)
import transformers
print(json.dumps({"seconds": seconds, "versions": f"torch {torch.__version__}, transformers {transformers.__version__}"}))
"""


def corpus_sentences(n: int) -> list[str]:
    from bertcourse.data.corpora import sentences

    out = [s for s in sentences("austen", "moby_dick") if 3 <= len(s.split()) <= 80]
    if len(out) < n:
        raise SystemExit(f"only {len(out)} sentences available")
    return out[:n]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ref-python", default="/tmp/refvenv/bin/python")
    parser.add_argument("--no-xla", action="store_true", help="skip the XLA run")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from bertcourse.pretrained import load_sentence_encoder, model_path

    sentences = corpus_sentences(args.n)
    encoder = load_sentence_encoder("all-MiniLM-L6-v2")
    n_tokens = sum(len(r) for r in encoder.tokenize(sentences))
    print(f"[bench] {len(sentences):,} sentences, {n_tokens:,} tokens ([CLS]/[SEP] included), batch "
          f"{args.batch_size}, {args.threads} threads", flush=True)
    results, embeddings = {}, {}
    for xla in ([False] if args.no_xla else [False, True]):
        name = f"bertcourse SentenceEncoder, XLA {'on' if xla else 'off'}"
        encoder.encode(sentences[:512], batch_size=args.batch_size, jit_compile=xla)      # warm-up / trace
        start = time.perf_counter()
        embeddings[name] = encoder.encode(sentences, batch_size=args.batch_size, jit_compile=xla)
        first = time.perf_counter() - start
        entry = {"seconds": round(first, 1), "sentences_per_s": round(len(sentences) / first, 1)}
        if xla:  # the first full pass compiled the lengths the warm-up did not see: time a second pass
            start = time.perf_counter()
            encoder.encode(sentences, batch_size=args.batch_size, jit_compile=True)
            second = time.perf_counter() - start
            entry.update(first_pass_seconds=entry["seconds"], seconds=round(second, 1),
                         sentences_per_s=round(len(sentences) / second, 1))
        results[name] = entry
        print(f"[bench] {name}: {entry}", flush=True)

    if Path(args.ref_python).exists():
        with tempfile.TemporaryDirectory() as tmp:
            sent_file, out_file = Path(tmp) / "s.json", Path(tmp) / "e.npy"
            sent_file.write_text(json.dumps(sentences), encoding="utf-8")
            spec = {"threads": args.threads, "batch_size": args.batch_size, "sentences": str(sent_file),
                    "model_dir": str(model_path()), "out": str(out_file)}
            proc = subprocess.run([args.ref_python, "-c", _REFERENCE, json.dumps(spec)], capture_output=True,
                                  text=True, cwd=tmp, env=dict(os.environ, TOKENIZERS_PARALLELISM="false"))
            if proc.returncode:
                print(proc.stderr[-3000:])
                raise SystemExit("reference run failed")
            ref = json.loads(proc.stdout.strip().splitlines()[-1])
            name = f"reference ({ref['versions']}), sentence-transformers recipe"
            results[name] = {"seconds": round(ref["seconds"], 1),
                             "sentences_per_s": round(len(sentences) / ref["seconds"], 1)}
            ref_emb = np.load(out_file)
        print(f"[bench] {name}: {results[name]}", flush=True)
        for k, e in embeddings.items():
            results[k]["max_abs_diff_vs_reference"] = float(f"{np.abs(e - ref_emb).max():.2e}")
            results[k]["speed_vs_reference"] = round(ref["seconds"] / results[k]["seconds"], 2)
    else:
        print(f"[bench] reference skipped: {args.ref_python} not found (see the module docstring).")

    print(f"\n| implementation | sentences/s | seconds | vs reference | max abs diff |\n|---|---|---|---|---|")
    for k, r in results.items():
        print(f"| {k} | {r['sentences_per_s']} | {r['seconds']} | {r.get('speed_vs_reference', 1.0 if 'reference' in k else '-')}x "
              f"| {r.get('max_abs_diff_vs_reference', '-')} |")
    if args.json:
        args.json.write_text(json.dumps({"n": len(sentences), "tokens": n_tokens, "batch_size": args.batch_size,
                                         "threads": args.threads, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
