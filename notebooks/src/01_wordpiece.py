# %% [markdown]
# # 01 · From characters to ids: WordPiece
#
# **What you will do:** follow one sentence from raw characters to the integer ids BERT reads.
# You will clean and split text the way BERT does, cut words into WordPiece sub-words with `##`,
# learn your own vocabulary on Jane Austen, see what the vocabulary size trades off, draw where
# every token came from in the original text, and check that the readable Python tokenizer, the
# in-graph TensorFlow tokenizer and Hugging Face `tokenizers` give the *same* ids.
#
# BERT never sees words. It sees ids from a fixed vocabulary of sub-words (30,522 for
# `bert-base-uncased`): frequent words are one token (`the`, `house`), rare ones are spelled out
# from pieces (section 2 shows what the real vocabulary does to *anticonstitutionally*), and a piece
# that starts with `##` glues onto the one before. Nothing is ever out of vocabulary except characters the vocabulary never
# saw, which become `[UNK]`.

# %% tags=["parameters"]
import os

SCALE = os.environ.get("BERTCOURSE_SCALE", "course")  # ci | course | full

# %%
from bertcourse.course import scale_value, setup

info = setup(seed=1, scale=SCALE)
# How much text we learn from and measure on, per scale.
TRAIN_SENTENCES = scale_value({"ci": 1_200, "course": None, "full": None})   # None: every sentence
VOCAB_SIZE = scale_value({"ci": 1_000, "course": 8_000, "full": 8_000})
TRADEOFF_SIZES = scale_value({"ci": [300, 1_000], "course": [500, 1_000, 2_000, 4_000],
                              "full": [500, 1_000, 2_000, 4_000, 8_000]})
TRADEOFF_SAMPLE = scale_value({"ci": 1_200, "course": 6_000, "full": None})
SPEED_SENTENCES = scale_value({"ci": 2_000, "course": None, "full": None})
print(info)

# %% [markdown]
# ## 1. Characters: clean, lowercase, strip accents, split
#
# Before any sub-word, BERT's *basic tokenizer* normalises the text character by character:
# control characters go, every kind of whitespace becomes a space, (for "uncased" models) letters
# are lowercased and accents removed by Unicode decomposition (NFD: `é` = `e` + a combining acute
# accent, and the accent is dropped), CJK ideographs become words of their own, and every
# punctuation character is split off. "Punctuation" includes ASCII symbols such as `$`, `+`, `^`.

# %%
# NBVAL_CHECK_OUTPUT
from bertcourse.text import BasicTokenizer

uncased = BasicTokenizer(lowercase=True)
cased = BasicTokenizer(lowercase=False)
for text in [" \tHeLLo!how  \n Are yoU?  ", "Crème brûlée at Mrs. Jennings's: £5!", "Der Fußball", "ah博推zz",
             "zero\u200bwidth and\u00a0no-break"]:
    print(f"{text!r:42} uncased {uncased.tokenize(text)}")
    print(f"{'':42} cased   {cased.tokenize(text)}")

# %% [markdown]
# The whole normaliser is one small function applied to each character (and cached, since a text
# has few distinct characters). Each original character becomes zero, one or several normalised
# characters, and remembers where it came from: that is how tokens get offsets into the original.

# %%
import inspect

import bertcourse.text.normalize as normalize

print(inspect.getsource(normalize.normalize_char))

# %% [markdown]
# ## 2. WordPiece: greedy longest match first
#
# Given a vocabulary, each word is cut from the left: take the *longest* vocabulary entry that
# starts the word; then the longest `##`-entry that continues it; and so on. If at some position
# nothing matches, the whole word is `[UNK]`. That is all of WordPiece at inference time:

# %%
from bertcourse.text.wordpiece import greedy_wordpiece

print(inspect.getsource(greedy_wordpiece))

# %% [markdown]
# Let us use it with the real BERT-uncased vocabulary (it ships with the all-MiniLM-L6-v2 package,
# so nothing is downloaded). `WordPieceTokenizer` = basic tokenizer + WordPiece + the ids.

# %%
# NBVAL_CHECK_OUTPUT
from bertcourse.text import WordPieceTokenizer, bert_uncased_vocab_path

bert = WordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path())
print(bert)
for text in ["UNwanted, running", "anticonstitutionally", "Willoughby and Elinor Dashwood", "Fußball 🎉"]:
    print(f"{text:32} {bert.tokenize(text)}")
print(bert.encode("UNwanted, running"), "->", repr(bert.decode(bert.encode("UNwanted, running"))))

# %% [markdown]
# **A correction to a common example.** Introductions to BERT often show *anticonstitutionally* as
# `anti ##constitution ##ally`. That is not what BERT's uncased vocabulary does, and greedy matching
# tells why: `##constitution` is not in the vocabulary (only the word-initial `constitution` is), so after
# `anti` the longest `##` piece that continues the word is much shorter. The real split is printed above;
# the cell below checks the pieces the example assumes.

# %%
# NBVAL_CHECK_OUTPUT
for piece in ["anti", "constitution", "##constitution", "##constitutional", "##con", "##sti", "##tu", "##tion",
              "##ally"]:
    print(f"{piece:18} in the uncased vocabulary: {piece in bert.vocab}")
print("real split:", bert.tokenize("anticonstitutionally"))

# %% [markdown]
# ## 3. Learning a vocabulary on Austen
#
# Where does a vocabulary come from? `learn_vocabulary` counts the words of a corpus (after the
# basic tokenizer) and keeps the sub-words that greedy segmentation would use most often, until
# it has `vocab_size` of them: every single character (so nothing known is ever `[UNK]`), then
# frequent words and pieces. The five special tokens sit at fixed ids 0–4. We learn on the
# training chapters and keep every tenth chapter unseen, to measure on.

# %%
import time

from bertcourse.data.corpora import load_corpus, split_documents
from bertcourse.text import learn_vocabulary

train_docs, heldout_docs = split_documents(load_corpus("austen"))
train = [s for d in train_docs for s in d.sentences]
heldout = [s for d in heldout_docs for s in d.sentences]
print(f"{len(train):,} training sentences, {len(heldout):,} held-out sentences")

start = time.perf_counter()
vocab = learn_vocabulary(train, vocab_size=VOCAB_SIZE, sample_size=TRAIN_SENTENCES)
print(f"learned {len(vocab):,} tokens in {time.perf_counter() - start:.1f}s")
print("first tokens:", vocab[:12])
print("some ## pieces:", [t for t in vocab if t.startswith("##") and len(t) > 4][:10])

# %%
# NBVAL_CHECK_OUTPUT
print(vocab[:5], "at ids 0-4")

# %% [markdown]
# Saved as `vocab.txt` (one token per line, line number = id), the format every BERT uses:

# %%
import tempfile
from pathlib import Path

from bertcourse.text import save_vocabulary

vocab_file = save_vocabulary(vocab, Path(tempfile.mkdtemp()) / "austen_vocab.txt")
austen = WordPieceTokenizer.from_vocab_file(vocab_file)
for text in ["anticonstitutionally", "Willoughby", "Fitzwilliam Darcy", "Mr. Knightley", "Pemberley",
             "Kowalczyk", "Zanzibar", "smartphone", "Fußball", "北京"]:
    print(f"{text:22} austen {austen.tokenize(text)!s:48} bert {bert.tokenize(text)}")

# %% [markdown]
# Places and names Austen uses all the time (`Pemberley`, `Knightley`, `Dashwood`) are single tokens
# in *her* vocabulary but pieces in BERT's (learned on Wikipedia and books), while modern words
# (`smartphone`) and foreign names fall apart in hers. Characters she never wrote (`ß`, Chinese)
# are `[UNK]` for her vocabulary.
#
# ## 4. Offsets: where did each token come from?
#
# `tokenize_with_offsets` gives each token its `start:end` in the **original** string, even
# after lowercasing and accent stripping. Question answering and named-entity recognition need
# that to point back at the text.

# %%
# NBVAL_CHECK_OUTPUT
from bertcourse.text.display import format_offsets

text = "Mr. Darcy's café, anticonstitutionally!"
spans = bert.tokenize_with_offsets(text)
print(spans[:4])
print(format_offsets(text, spans))
assert all(bert.basic.normalize(text[s:e]) == t.removeprefix("##") for t, s, e in spans)

# %% [markdown]
# ## 5. The vocabulary-size trade-off
#
# A bigger vocabulary cuts text into fewer tokens (shorter sequences, cheaper attention) but costs
# a bigger embedding table and rarer, less-trained tokens. We learn vocabularies of several sizes
# and measure on the held-out chapters: tokens per word (1.0 = every word one token) and the
# `[UNK]` rate.

# %%
import matplotlib.pyplot as plt

rows, by_size = [], {}
for size in TRADEOFF_SIZES:
    tok = by_size[size] = WordPieceTokenizer(learn_vocabulary(train, vocab_size=size, sample_size=TRADEOFF_SAMPLE))
    tokens = [t for s in heldout for t in tok.tokenize(s)]
    words = sum(len(tok.basic.tokenize(s)) for s in heldout)
    rows.append((size, len(tokens) / words, tokens.count("[UNK]") / len(tokens)))
    print(f"vocab {size:6,}: {rows[-1][1]:.3f} tokens/word, [UNK] rate {rows[-1][2]:.4%}")

fig, ax = plt.subplots(figsize=(6, 3), dpi=80)
ax.plot([r[0] for r in rows], [r[1] for r in rows], "o-", label="tokens per word")
ax.set_xscale("log")
ax.set_xlabel("vocabulary size")
ax.set_ylabel("tokens per word (held-out Austen)")
ax2 = ax.twinx()
ax2.plot([r[0] for r in rows], [100 * r[2] for r in rows], "s--", color="tab:red", label="[UNK] %")
ax2.set_ylabel("[UNK] %")
ax2.set_ylim(bottom=0, top=max(1.0, 100 * max(r[2] for r in rows) * 1.2))
fig.legend(loc="upper right")
fig.tight_layout()
plt.show()

# %% [markdown]
# The [UNK] rate stays at (or near) zero at every size, because every character is in every
# vocabulary; what the size buys is fewer pieces per word, with quickly diminishing returns.
#
# ## 6. Pure Python vs in the graph
#
# `WordPieceTokenizer` is the readable reference. For training we need tokenization inside the
# TensorFlow graph (in `tf.data`, in an exported model that takes raw strings), so
# `FastWordPieceTokenizer` is a Keras layer built on `tensorflow_text.FastWordpieceTokenizer`, with
# BERT's normalisation done by graph ops. It must give exactly the same ids, always.

# %%
from bertcourse.text import FastWordPieceTokenizer

print(inspect.getsource(FastWordPieceTokenizer.normalize))

# %%
import tensorflow as tf

from bertcourse.data.corpora import sentences
from bertcourse.text import FastWordPieceTokenizer

fast = FastWordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path())
corpus = sentences("austen")[:SPEED_SENTENCES]
fast(tf.constant(corpus[:10]))  # warm-up

start = time.perf_counter()
pure_ids = [bert.encode(s) for s in corpus]
pure_s = time.perf_counter() - start
batch = tf.constant(corpus)
start = time.perf_counter()
fast_out = fast(batch)  # a tf.RaggedTensor
fast_s = time.perf_counter() - start
fast_ids = fast_out.to_list()
same = sum(a == b for a, b in zip(pure_ids, fast_ids))
print(f"{len(corpus):,} sentences: identical ids for {same:,} ({same / len(corpus):.2%})")
print(f"pure Python {pure_s:.2f}s, in-graph {fast_s:.2f}s: {pure_s / fast_s:.1f}x faster in the graph")
try:  # the production twin, if installed (it is a test dependency)
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    hf = Tokenizer(models.WordPiece(bert.vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    hf.normalizer = normalizers.BertNormalizer(lowercase=True)
    hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    hf_ids = [e.ids for e in hf.encode_batch(corpus, add_special_tokens=False)]
    print(f"Hugging Face tokenizers: identical ids for {sum(a == b for a, b in zip(hf_ids, fast_ids)):,}")
except ImportError:
    print("(Hugging Face tokenizers not installed: pip install tokenizers)")

# %%
# NBVAL_CHECK_OUTPUT
print("same ids:", same == len(corpus))
ids, starts, ends = fast.tokenize_with_offsets(tf.constant(["Mr. Darcy's café"]))
print(ids.to_list(), starts.to_list(), ends.to_list())
print(bert.encode("Mr. Darcy's café"), [(s, e) for _, s, e in bert.tokenize_with_offsets("Mr. Darcy's café")])

# %% [markdown]
# Why not use `tensorflow_text.FastBertTokenizer` directly? Its normaliser *case-folds*, which turns
# `ß` into `ss`, and uses compatibility decomposition, which deletes `´`. BERT does neither:

# %%
# NBVAL_CHECK_OUTPUT
import tensorflow_text as tf_text

from bertcourse.text import load_vocabulary

bert_vocab = load_vocabulary(bert_uncased_vocab_path())
fast_bert = tf_text.FastBertTokenizer(bert_vocab, lower_case_nfd_strip_accents=True)
for text in ["Fußball", "a´b"]:
    print(f"{text:10} BERT {bert.tokenize(text)}  FastBertTokenizer "
          f"{[bert_vocab[i] for i in fast_bert.tokenize([text]).to_list()[0]]}  ours "
          f"{[bert_vocab[i] for i in fast([text]).to_list()[0]]}")

# %% [markdown]
# ## 7. Cased vs uncased
#
# An "uncased" vocabulary (all lowercase, no accents) must be used with `lowercase=True`. Feeding
# it cased text silently wrecks the tokens: capitalised words fall into pieces or `[UNK]`. A cased
# model (e.g. `bert-base-cased`) has its own vocabulary with capitals and keeps accents.

# %%
# NBVAL_CHECK_OUTPUT
mismatched = WordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path(), lowercase=False)
for text in ["Elinor Dashwood went to London.", "Héloïse"]:
    print(f"uncased vocab, lowercase=True : {bert.tokenize(text)}")
    print(f"uncased vocab, lowercase=False: {mismatched.tokenize(text)}")

# %%
# The same sample and size as the largest vocabulary of section 5, without lowercasing.
size = TRADEOFF_SIZES[-1]
austen_cased = WordPieceTokenizer(learn_vocabulary(train, vocab_size=size, sample_size=TRADEOFF_SAMPLE,
                                                   lowercase=False), lowercase=False)
for name, tok in [("uncased", by_size[size]), ("cased", austen_cased)]:
    n_tokens = sum(len(tok.tokenize(s)) for s in heldout)
    n_words = sum(len(tok.basic.tokenize(s)) for s in heldout)
    print(f"{name:8} vocabulary of {len(tok.vocab):,}: {n_tokens / n_words:.3f} tokens per word on held-out Austen")
print("cased:", austen_cased.tokenize("Elinor and ELINOR and elinor"))

# %% [markdown]
# The cased vocabulary spends entries on `Elinor` *and* `elinor`, so at the same size it cuts
# text into slightly more pieces; in exchange the model can see capitals (useful for names).
#
# ## 8. Packing: what the model actually receives
#
# Tokens become a fixed-length input: `[CLS] A [SEP] B [SEP]`, padded, with segment ids and a
# padding mask. Too-long pairs are truncated (`round_robin`, `waterfall` or Hugging Face's
# `longest_first`; see `help(pack_inputs)`).

# %%
# NBVAL_CHECK_OUTPUT
from bertcourse.text import pack_inputs

a = fast(tf.constant(["Elinor was sensible."]))
b = fast(tf.constant(["Marianne was not, and wrote letters."]))
packed = pack_inputs([a, b], sequence_length=16, tokenizer=fast)
print(bert.convert_ids_to_tokens(packed["token_ids"][0].numpy()))
for key, value in packed.items():
    print(f"{key:13}", value[0].numpy().astype(int).tolist())

# %% [markdown]
# ### One preprocessor: strings in, the model's inputs out
#
# Every part of the package (the tasks, the sentence encoder, the fine-tuning engine) turns text into
# model inputs in one place, `BertPreprocessor`: the in-graph tokenizer followed by `pack_inputs`, as a
# Keras layer that also runs inside `tf.data` and travels inside a saved model. It gives the same ids,
# segment ids and masks as Hugging Face's `tokenizers` with `truncation="longest_first"` and padding
# (`tests/test_text_preprocessor.py` checks 1,000 real pairs at five lengths). Special tokens written in
# the text, such as `[MASK]`, are one token each, as in Hugging Face; `split_special_tokens=True` on the
# tokenizer reads them as plain text instead.

# %%
# NBVAL_CHECK_OUTPUT
from bertcourse.text import BertPreprocessor

preprocessor = BertPreprocessor(fast, sequence_length=16)
pair = preprocessor((["Elinor was sensible."], ["Marianne was not, and wrote letters."]))
print(bert.convert_ids_to_tokens(pair["token_ids"][0].numpy()))
masked = preprocessor(["The [MASK] sat on the mat."])
print(bert.convert_ids_to_tokens(masked["token_ids"][0].numpy()))
split = FastWordPieceTokenizer.from_vocab_file(bert_uncased_vocab_path(), split_special_tokens=True)
print(bert.convert_ids_to_tokens(split(tf.constant(["The [MASK] sat."]))[0].numpy()))

# %% [markdown]
# ## 9. Other languages: fertility, measured
#
# BERT's vocabulary was learned on English. What does it do to another language? The measure is
# *fertility*: WordPiece pieces per word (1.0 = every word one piece). The text is the same verses in
# two languages: Genesis and John from the modern English WEB (lesson 12's verse pairs) and from the
# Spanish Reina-Valera of 1909 (public domain, `data/bible_es_gen_john.tsv`, aligned by verse reference).
# Same content, so any difference is the vocabulary's. We measure BERT's uncased vocabulary, vocabularies
# learned on each language's training verses, and one *joint* vocabulary of the same size learned on
# both, as a multilingual model (mBERT) does.

# %%
from bertcourse.data.bible import load_verse_pairs
from bertcourse.data.corpora import data_dir

es_lines = (data_dir() / "bible_es_gen_john.tsv").read_text(encoding="utf-8").splitlines()[1:]
spanish = dict(line.split("\t") for line in es_lines)
web = {ref: w for ref, kjv, w in load_verse_pairs(books=["Gen", "John"])}
refs = [r for r in spanish if r in web]
held_refs = [r for r in refs if int(r.split(" ")[1].split(":")[0]) % 10 == 0]  # every 10th chapter
held_set = set(held_refs)
train_refs = [r for r in refs if r not in held_set]
texts = {"English (WEB)": ([web[r] for r in train_refs], [web[r] for r in held_refs]),
         "Spanish (RV 1909)": ([spanish[r] for r in train_refs], [spanish[r] for r in held_refs])}
print(f"{len(refs):,} verses in both; {len(train_refs):,} to learn vocabularies from, {len(held_refs):,} held out "
      f"(every 10th chapter)")
print("e.g.", held_refs[0], "|", web[held_refs[0]][:60], "|", spanish[held_refs[0]][:60])


def fertility(tok, sentences):
    """WordPiece pieces per word (words = the basic tokenizer's), and the share of [UNK] pieces."""
    pieces = [p for s in sentences for p in tok.tokenize(s)]
    words = sum(len(tok.basic.tokenize(s)) for s in sentences)
    return len(pieces) / words, pieces.count("[UNK]") / len(pieces)


FERTILITY_VOCAB = scale_value({"ci": 1_000, "course": 3_000, "full": 3_000})
english_train, spanish_train = texts["English (WEB)"][0], texts["Spanish (RV 1909)"][0]
vocabularies = {
    "BERT uncased (English, 30,522)": bert,
    f"learned on English verses ({FERTILITY_VOCAB:,})": WordPieceTokenizer(
        learn_vocabulary(english_train, vocab_size=FERTILITY_VOCAB)),
    f"learned on Spanish verses ({FERTILITY_VOCAB:,})": WordPieceTokenizer(
        learn_vocabulary(spanish_train, vocab_size=FERTILITY_VOCAB)),
    f"joint, English + Spanish ({FERTILITY_VOCAB:,})": WordPieceTokenizer(
        learn_vocabulary(english_train + spanish_train, vocab_size=FERTILITY_VOCAB)),
}
fertility_table = {}
print(f"\n{'vocabulary':38s} {'English':>9s} {'Spanish':>9s}   pieces per word on held-out verses")
for name, tok in vocabularies.items():
    fertility_table[name] = {lang: fertility(tok, held)[0] for lang, (_, held) in texts.items()}
    print(f"{name:38s} " + " ".join(f"{v:9.2f}" for v in fertility_table[name].values()))
sample = spanish[held_refs[0]].split()[:8]
print("\nBERT uncased on Spanish:", bert.tokenize(" ".join(sample)))
print("joint vocabulary       :", vocabularies[f"joint, English + Spanish ({FERTILITY_VOCAB:,})"].tokenize(" ".join(sample)))

# %% [markdown]
# How to read the table (the numbers are printed above):
#
# * **An English vocabulary on Spanish** cuts words into many more pieces than on English: common
#   Spanish words (`hijos`, `generaciones`) become two or three pieces. A longer sequence for the same content means more compute, the 512-token
#   limit reached sooner, and meaning spread over pieces the model saw rarely. (The uncased vocabulary
#   also strips the accents: `fué` becomes `fue`.)
# * **Each monolingual vocabulary** is cheap on its own language and expensive on the other.
# * **The joint vocabulary** of the same size pays only a little on each language compared with the
#   monolingual ones, because the two share many pieces (names, numbers, punctuation, Latin roots) and
#   the rest of its entries are split between them.
#
# This is the trade-off of multilingual BERT (mBERT): one WordPiece vocabulary of about 120,000 entries
# (cased) for 104 Wikipedia languages, learned after re-weighting the languages (exponentially smoothed
# sampling) so that large languages do not take every entry. Languages with little data or a script of
# their own still get few entries and high fertility, which costs them sequence length and accuracy;
# larger vocabularies (XLM-R: 250,000 SentencePiece entries) are the usual remedy.

# %% [markdown]
# ## Exercises
#
# 1. Tokenize your own name with the BERT vocabulary and with the Austen vocabulary. Which needs
#    more pieces, and why?
# 2. Find three words that become `[UNK]` with the BERT-uncased vocabulary. What do they have in
#    common?
# 3. With `pack_inputs`, pack two 20-token sentences into 16 positions with each truncation
#    strategy. How many tokens of each sentence survive?
# 4. Make a vocabulary of 1,000 tokens from Moby-Dick (`sentences("moby_dick")`) and measure its
#    tokens per word on held-out Austen. Is it worse than a 1,000-token Austen vocabulary?
# 5. **Write WordPiece yourself.** Without scrolling up to `greedy_wordpiece`, write
#    `my_wordpiece(word, vocab)`: cut `word` into the longest pieces of `vocab` (a set of strings), left to
#    right, pieces after the first prefixed with `##`; return `None` when at some position no piece
#    matches. `check_wordpiece` runs yours and the package's on BERT's uncased vocabulary and real words,
#    and says what differs (it never raises, so you can run it on an unfinished function).

# %%
from bertcourse.exercises import check_wordpiece


def my_wordpiece(word, vocab):
    pieces = []
    # your code here
    return None


check_wordpiece(my_wordpiece)

# %% [markdown]
# ### Solutions

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 1
for name in ["Margaret Dashwood", "Anna Kowalczyk"]:
    print(f"{name:18} bert {bert.tokenize(name)}  austen {austen.tokenize(name)}")
# Pieces follow the frequency of letter sequences in each training corpus.

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 2: characters the vocabulary never saw (emoji, rare scripts), or words longer than 100 characters.
for word in ["🎉", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "a" * 101]:
    print(word[:20], bert.tokenize(word))

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 3
s1 = fast(tf.constant(["one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
                       "sixteen seventeen eighteen nineteen twenty"]))
s2 = fast(tf.constant(["alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
                       "sigma tau upsilon"]))
for strategy in ["round_robin", "waterfall", "longest_first"]:
    out = pack_inputs([s1, s2], 16, tokenizer=fast, truncation=strategy)
    segs, mask = out["segment_ids"][0].numpy(), out["padding_mask"][0].numpy()
    a_kept = int(((segs == 0) & mask).sum()) - 2   # minus [CLS] and the first [SEP]
    b_kept = int((segs == 1).sum()) - 1            # minus the last [SEP]
    print(f"{strategy:13} A keeps {a_kept}, B keeps {b_kept} (13 slots for 20 + 20 tokens)")

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 4
moby = WordPieceTokenizer(learn_vocabulary(sentences("moby_dick"), vocab_size=1_000, sample_size=TRADEOFF_SAMPLE))
for name, tok in [("moby-dick", moby), ("austen", by_size[1_000])]:  # the same size from section 5
    n = sum(len(tok.tokenize(s)) for s in heldout)
    w = sum(len(tok.basic.tokenize(s)) for s in heldout)
    print(f"{name:10} {n / w:.3f} tokens per word on held-out Austen")

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution 5: longest candidate first; a continuation carries "##"; no match at a position -> None.
def my_wordpiece(word, vocab):
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
        else:
            return None
        pieces.append(piece)
        start = end
    return pieces


check_wordpiece(my_wordpiece)
