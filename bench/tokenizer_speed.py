#!/usr/bin/env python
"""Tokenizer throughput on the whole shipped corpus, every implementation in one run.

    .venv/bin/python bench/tokenizer_speed.py                 # print the table
    .venv/bin/python bench/tokenizer_speed.py --write-readme  # ... and put it in bench/README.md

Contestants, all with the BERT-uncased vocabulary (30,522 tokens), no special tokens added:

* ``fast``        bertcourse FastWordPieceTokenizer, one in-graph call on the whole corpus;
* ``fast tf.data`` the same layer mapped over batches of 1,024 in ``tf.data`` (parallel calls);
* ``pure``        bertcourse WordPieceTokenizer (pure Python), a fresh instance;
* ``bert-orig``   google-research/bert ``FullTokenizer`` (pure Python), embedded below as the
  reference for the pure tokenizer;
* ``hf``          Hugging Face ``tokenizers`` (Rust), ``encode_batch`` (its own thread pool);
* ``keras-hub``   ``keras_hub.tokenizers.WordPieceTokenizer`` (lowercase, strip_accents).

Reported: the best of ``--repeats`` runs, lines/s and tokens/s, speed relative to HF, and the
share of lines whose ids equal HF's. Timed: the tokenizer call producing its native output
(RaggedTensor, HF ``Encoding`` list, Python lists); converting to Python lists for the parity
check is not timed.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import unicodedata
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
# Drop bench/ from the path (scripts there must not shadow packages) so that `import tokenizers`
# finds Hugging Face's package, not this script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))


# --------------------------------------------------------------------------------------------
# Reference: google-research/bert tokenization.py (FullTokenizer, BasicTokenizer,
# WordpieceTokenizer), Copyright 2018 The Google AI Language Team Authors, Apache License 2.0,
# https://github.com/google-research/bert/blob/master/tokenization.py. Python 3 only (the
# six/Py2 branches are dropped); the algorithm is unchanged. Used here as the speed reference only.
# --------------------------------------------------------------------------------------------
def _orig_whitespace_tokenize(text):
    text = text.strip()
    if not text:
        return []
    return text.split()


class OrigFullTokenizer:
    def __init__(self, vocab, do_lower_case=True):
        self.vocab = vocab
        self.basic_tokenizer = OrigBasicTokenizer(do_lower_case=do_lower_case)
        self.wordpiece_tokenizer = OrigWordpieceTokenizer(vocab=self.vocab)

    def tokenize(self, text):
        split_tokens = []
        for token in self.basic_tokenizer.tokenize(text):
            for sub_token in self.wordpiece_tokenizer.tokenize(token):
                split_tokens.append(sub_token)
        return split_tokens

    def convert_tokens_to_ids(self, tokens):
        return [self.vocab[t] for t in tokens]


class OrigBasicTokenizer:
    def __init__(self, do_lower_case=True):
        self.do_lower_case = do_lower_case

    def tokenize(self, text):
        text = self._clean_text(text)
        text = self._tokenize_chinese_chars(text)
        orig_tokens = _orig_whitespace_tokenize(text)
        split_tokens = []
        for token in orig_tokens:
            if self.do_lower_case:
                token = token.lower()
                token = self._run_strip_accents(token)
            split_tokens.extend(self._run_split_on_punc(token))
        return _orig_whitespace_tokenize(" ".join(split_tokens))

    def _run_strip_accents(self, text):
        text = unicodedata.normalize("NFD", text)
        output = []
        for char in text:
            cat = unicodedata.category(char)
            if cat == "Mn":
                continue
            output.append(char)
        return "".join(output)

    def _run_split_on_punc(self, text):
        chars = list(text)
        i = 0
        start_new_word = True
        output = []
        while i < len(chars):
            char = chars[i]
            if _orig_is_punctuation(char):
                output.append([char])
                start_new_word = True
            else:
                if start_new_word:
                    output.append([])
                start_new_word = False
                output[-1].append(char)
            i += 1
        return ["".join(x) for x in output]

    def _tokenize_chinese_chars(self, text):
        output = []
        for char in text:
            cp = ord(char)
            if self._is_chinese_char(cp):
                output.append(" ")
                output.append(char)
                output.append(" ")
            else:
                output.append(char)
        return "".join(output)

    def _is_chinese_char(self, cp):
        if ((cp >= 0x4E00 and cp <= 0x9FFF) or (cp >= 0x3400 and cp <= 0x4DBF) or
                (cp >= 0x20000 and cp <= 0x2A6DF) or (cp >= 0x2A700 and cp <= 0x2B73F) or
                (cp >= 0x2B740 and cp <= 0x2B81F) or (cp >= 0x2B820 and cp <= 0x2CEAF) or
                (cp >= 0xF900 and cp <= 0xFAFF) or (cp >= 0x2F800 and cp <= 0x2FA1F)):
            return True
        return False

    def _clean_text(self, text):
        output = []
        for char in text:
            cp = ord(char)
            if cp == 0 or cp == 0xfffd or _orig_is_control(char):
                continue
            if _orig_is_whitespace(char):
                output.append(" ")
            else:
                output.append(char)
        return "".join(output)


class OrigWordpieceTokenizer:
    def __init__(self, vocab, unk_token="[UNK]", max_input_chars_per_word=200):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word

    def tokenize(self, text):
        output_tokens = []
        for token in _orig_whitespace_tokenize(text):
            chars = list(token)
            if len(chars) > self.max_input_chars_per_word:
                output_tokens.append(self.unk_token)
                continue
            is_bad = False
            start = 0
            sub_tokens = []
            while start < len(chars):
                end = len(chars)
                cur_substr = None
                while start < end:
                    substr = "".join(chars[start:end])
                    if start > 0:
                        substr = "##" + substr
                    if substr in self.vocab:
                        cur_substr = substr
                        break
                    end -= 1
                if cur_substr is None:
                    is_bad = True
                    break
                sub_tokens.append(cur_substr)
                start = end
            if is_bad:
                output_tokens.append(self.unk_token)
            else:
                output_tokens.extend(sub_tokens)
        return output_tokens


def _orig_is_whitespace(char):
    if char == " " or char == "\t" or char == "\n" or char == "\r":
        return True
    return unicodedata.category(char) == "Zs"


def _orig_is_control(char):
    if char == "\t" or char == "\n" or char == "\r":
        return False
    return unicodedata.category(char) in ("Cc", "Cf")


def _orig_is_punctuation(char):
    cp = ord(char)
    if ((cp >= 33 and cp <= 47) or (cp >= 58 and cp <= 64) or
            (cp >= 91 and cp <= 96) or (cp >= 123 and cp <= 126)):
        return True
    return unicodedata.category(char).startswith("P")
# ------------------------------------------------------------------------- end of reference


def best_of(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write-readme", action="store_true", help="replace the '## Tokenizers' section")
    args = parser.parse_args(argv)

    from bertcourse.course import import_tensorflow_quietly

    tf = import_tensorflow_quietly()
    import keras_hub
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    from bertcourse.data.corpora import sentences
    from bertcourse.text import FastWordPieceTokenizer, WordPieceTokenizer, bert_uncased_vocab_path, load_vocabulary

    load_start = os.getloadavg()[0]
    lines = sentences()
    vocab_path = bert_uncased_vocab_path()
    vocab_list = load_vocabulary(vocab_path)
    vocab = {t: i for i, t in enumerate(vocab_list)}
    print(f"{len(lines):,} lines, {sum(map(len, lines)):,} characters; {os.cpu_count()} CPU cores", flush=True)

    hf = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    hf.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=True)
    hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    fast = FastWordPieceTokenizer(vocab_list)
    kh = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=vocab_list, lowercase=True, strip_accents=True)
    orig = OrigFullTokenizer(vocab)
    text = tf.constant(lines)
    ds = (tf.data.Dataset.from_tensor_slices(lines).batch(1024)
          .map(fast, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE))
    # keras-hub converts eager outputs to Python lists; in a tf.function it returns a RaggedTensor.
    kh_graph = tf.function(lambda x: kh(x))
    fast(text[:10]), kh_graph(text[:10])  # build / warm up graphs

    # Each run returns what the tokenizer natively produces (a RaggedTensor, HF Encodings, lists);
    # turning that into Python lists for the parity check is not timed.
    to_lists = {
        "ragged": lambda r: r.to_list(),
        "batches": lambda bs: [row for b in bs for row in b.to_list()],
        "encodings": lambda es: [e.ids for e in es],
        "lists": lambda x: x,
    }
    runs = {
        "fast (bertcourse, in graph, 1 call)": (lambda: fast(text), "ragged"),
        "fast (bertcourse, tf.data batches of 1024)": (lambda: list(ds), "batches"),
        "hf tokenizers (encode_batch)": (lambda: hf.encode_batch(lines, add_special_tokens=False), "encodings"),
        "keras-hub WordPieceTokenizer": (lambda: kh_graph(text), "ragged"),
        "pure (bertcourse, Python)": (lambda: WordPieceTokenizer(vocab_list).encode_batch(lines), "lists"),
        "bert-orig (google-research/bert, Python)": (
            lambda: [orig.convert_tokens_to_ids(orig.tokenize(s)) for s in lines], "lists"),
    }
    results = {}
    for name, (fn, kind) in runs.items():
        repeats = args.repeats if "Python" not in name else max(1, args.repeats - 1)
        seconds, out = best_of(fn, repeats)
        results[name] = (seconds, to_lists[kind](out))
        print(f"  {name:45s} {seconds:7.3f}s", flush=True)

    hf_seconds, hf_ids = results["hf tokenizers (encode_batch)"]
    header = "| tokenizer | lines/s | tokens/s | speed vs HF | ids equal to HF |\n|---|---:|---:|---:|---:|"
    rows = []
    for name, (seconds, ids) in results.items():
        n_tokens = sum(map(len, ids))
        same = sum(a == b for a, b in zip(ids, hf_ids))
        rows.append(f"| {name} | {len(lines) / seconds:,.0f} | {n_tokens / seconds:,.0f} | "
                    f"{hf_seconds / seconds:.2f}x | {same:,}/{len(lines):,} ({same / len(lines):.2%}) |")
    pure_s = results["pure (bertcourse, Python)"][0]
    orig_s = results["bert-orig (google-research/bert, Python)"][0]
    fast_s = min(results["fast (bertcourse, in graph, 1 call)"][0],
                 results["fast (bertcourse, tf.data batches of 1024)"][0])
    n_tokens = sum(map(len, hf_ids))
    table = "\n".join([header] + rows)
    summary = (f"Corpus: every sentence of the shipped corpora ({len(lines):,} lines, {n_tokens:,} tokens), "
               f"BERT-uncased vocabulary, best of {args.repeats} runs "
               f"(Python ones: best of {max(1, args.repeats - 1)}). Load average (1 min) at start / end: "
               f"{load_start:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.\n\n"
               f"- fast vs HF: {hf_seconds / fast_s:.2f}x (target >= 5x) -> "
               f"{'met' if hf_seconds / fast_s >= 5 else 'NOT met'}\n"
               f"- pure vs the original BERT Python tokenizer: {orig_s / pure_s:.2f}x its speed "
               f"(target: within 2x, i.e. >= 0.5x) -> {'met' if orig_s / pure_s >= 0.5 else 'NOT met'}")
    print()
    print(table)
    print()
    print(summary)

    if args.write_readme:
        readme = ROOT / "bench" / "README.md"
        body = readme.read_text(encoding="utf-8") if readme.is_file() else "# Benchmarks\n"
        section = (f"## Tokenizers\n\nMade with: `.venv/bin/python bench/tokenizer_speed.py --write-readme` "
                   f"({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU cores; other work may share the machine).\n\n"
                   f"{table}\n\n{summary}\n\n"
                   "Ratios move with machine load: Hugging Face's Rust thread pool loses most when other "
                   "processes share the cores, which flatters the in-graph tokenizer. Compare runs made "
                   "at a low load average.\n")
        pattern = re.compile(r"^## Tokenizers\n.*?(?=^## |\Z)", re.S | re.M)
        if pattern.search(body):
            body = pattern.sub(lambda _: section + "\n", body, count=1).rstrip("\n") + "\n"
        else:
            body = body.rstrip("\n") + "\n\n" + section
        readme.write_text(body, encoding="utf-8")
        print(f"\nwrote the '## Tokenizers' section of {readme.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
