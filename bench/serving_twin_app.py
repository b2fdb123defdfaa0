"""The twin of ``bertcourse serve`` for bench/serving.py: the same classifier, served by Hugging Face
``transformers`` + PyTorch inside the same web framework (FastAPI + uvicorn) and the same REST route.

    .venv/bin/python bench/serving_twin_app.py --model HF_DIR --name sentiment --port 8600

``HF_DIR``: a ``BertForSequenceClassification`` directory (bench/serving.py writes one from the course
model's weights). Each request is tokenized by the fast (Rust) tokenizer with padding to its longest
text and run under ``torch.inference_mode()`` in FastAPI's thread pool: what a straightforward
transformers web service does. Only ``{"instances": [...]}`` is accepted; answers carry ``label``,
``label_id`` and ``probabilities`` as ours do.
"""

from __future__ import annotations

import argparse
import os

os.environ["USE_TF"] = "0"  # transformers: PyTorch only

import torch  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI, HTTPException  # noqa: E402
from transformers import AutoTokenizer, BertForSequenceClassification  # noqa: E402


def create_app(model_dir: str, name: str, max_length: int) -> FastAPI:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = BertForSequenceClassification.from_pretrained(model_dir).eval()
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    app = FastAPI()

    @app.get("/healthz")
    def health():
        return {"status": "ok", "models": [name]}

    @app.post(f"/v1/models/{name}:predict")
    def predict(body: dict):  # a sync endpoint: FastAPI runs it in its thread pool
        texts = body.get("instances")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise HTTPException(400, "'instances' must be a non-empty list of strings")
        enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        with torch.inference_mode():
            logits = model(**enc).logits.float()
        probs = torch.softmax(logits, -1)
        ids = probs.argmax(-1).tolist()
        return {"predictions": [{"label": labels[i], "label_id": i, "probabilities": p}
                                for i, p in zip(ids, probs.tolist())]}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--name", default="sentiment")
    parser.add_argument("--port", type=int, default=8600)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    uvicorn.run(create_app(args.model, args.name, args.max_length), host="127.0.0.1", port=args.port,
                log_level="warning")


if __name__ == "__main__":
    main()
