"""WordPiece in the TensorFlow graph: a Keras layer on ``tensorflow_text.FastWordpieceTokenizer``.

Strings in, ``tf.RaggedTensor`` of ids out, with no Python per example: it runs inside
``tf.data.Dataset.map`` and inside an exported SavedModel that takes raw strings. It gives the
same ids as :class:`~bertcourse.text.WordPieceTokenizer` and as Hugging Face ``tokenizers``.

Why not ``tensorflow_text.FastBertTokenizer`` as it is? Its normaliser case-folds (``"ß"`` ->
``"ss"``, but BERT keeps ``"ß"``) and uses compatibility decomposition (``"´"`` disappears).
So the BERT normalisation is done here with graph ops, in the same order as Hugging Face:

1. delete control/format characters (``\\p{Cc}`` minus tab/newline/CR, ``\\p{Cf}``, ``\\p{Co}``, U+FFFD);
2. strip accents: ``normalize_utf8(NFD)``, then delete ``\\p{Mn}`` marks;
3. lowercase with ``tf.strings.lower(encoding="utf-8")``, after mapping ``"Σ"`` to ``"σ"`` (ICU
   would apply the final-sigma rule; BERT lowercases character by character);

then ``FastWordpieceTokenizer`` splits on whitespace, punctuation and CJK ideographs and runs
WordPiece (linear-time MaxMatch, same result as greedy longest-match-first). A word longer than
``max_input_chars_per_word`` *characters* must become one ``[UNK]`` (the library limit counts
bytes): the rare rows that could hold one (a run that long without ASCII space or punctuation)
go through the offsets path, which finds word boundaries and collapses such words.

Special tokens written in the text (``[CLS] [SEP] [MASK] [UNK] [PAD]``, those in the vocabulary)
are one token each, as in Hugging Face ``tokenizers`` and :class:`~bertcourse.text.WordPieceTokenizer`:
``tensorflow_text.regex_split_with_offsets`` cuts the original strings around them first (an exact,
case-sensitive match), the pieces between are tokenized as usual. ``split_special_tokens=True``
tokenizes them as plain text.

Offsets: ``tokenize_with_offsets`` normalises each original character separately (the ops above
are per character, except the final-sigma rule we disable), joins the pieces, and maps every
byte of the normalised text back to the character it came from with ``tf.searchsorted``.

>>> from bertcourse.text import FastWordPieceTokenizer
>>> tok = FastWordPieceTokenizer(["[UNK]", "un", "##want", "##ed", "runn", "##ing", ","])
>>> tok(["UNwant\\u00e9d,running"]).to_list()
[[1, 2, 3, 6, 4, 5]]
"""

from __future__ import annotations

import os
from typing import Sequence

import keras
import tensorflow as tf
import tensorflow_text as tf_text

from bertcourse.text.normalize import check_text
from bertcourse.text.vocab import load_vocabulary, save_vocabulary
from bertcourse.text.wordpiece import SPECIAL_TOKENS, special_tokens_in

__all__ = ["FastWordPieceTokenizer", "check_strings"]

VOCAB_ASSET = "vocabulary.txt"

# Category Cc without tab, newline, CR; Cf; Co; U+FFFD. (Cs cannot occur in valid UTF-8.)
_CONTROL = r"\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x{9F}\p{Cf}\p{Co}\x{FFFD}"
# ASCII whitespace and punctuation: a word of N characters implies a run of N characters without them.
_ASCII_BREAK = r"\t\n\r !-/:-@\[-`{-~"


@keras.saving.register_keras_serializable(package="bertcourse")
class FastWordPieceTokenizer(keras.layers.Layer):
    """In-graph BERT WordPiece tokenizer layer (strings -> ragged ids, offsets on request).

    Args:
        vocabulary: the tokens in id order (a list) or the path of a ``vocab.txt``. May be
            ``None`` only while a saved model restores it from its asset.
        lowercase: lowercase the text (``True`` for "uncased" vocabularies).
        strip_accents: ``None`` follows ``lowercase``, as in BERT.
        max_input_chars_per_word: longer words become ``[UNK]`` (at most 1000).
        unk_token, suffix_indicator: as in the vocabulary.
        vocabulary_in_config: put the vocabulary in ``get_config()`` (default). With ``False`` the
            config holds no vocabulary and a ``.keras`` file carries it as an asset
            (``assets/vocabulary.txt``) instead.
        output_dtype: ``"int32"`` (default) or ``"int64"``.
        split_special_tokens: ``False`` (default, as Hugging Face): ``[MASK]`` etc. written in the
            text are one token each; ``True``: they are split as plain text (``[``, ``mask``, ``]``).

    Example:
        >>> tok = FastWordPieceTokenizer(["[UNK]", "[MASK]", "the", "cat", "##s"])
        >>> tok(tf.constant(["The cats", "cat", "the [MASK]s"])).to_list()
        [[2, 3, 4], [3], [2, 1, 0]]
    """

    def __init__(self, vocabulary: Sequence[str] | str | os.PathLike | None = None, lowercase: bool = True,
                 strip_accents: bool | None = None, max_input_chars_per_word: int = 100,
                 unk_token: str = "[UNK]", suffix_indicator: str = "##", vocabulary_in_config: bool = True,
                 output_dtype: str = "int32", split_special_tokens: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        # Strings go in: no float casting, and plain Python lists are accepted.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        if not isinstance(max_input_chars_per_word, int) or not 1 <= max_input_chars_per_word <= 1000:
            raise ValueError(f"max_input_chars_per_word must be an int in [1, 1000], got {max_input_chars_per_word!r}.")
        if output_dtype not in ("int32", "int64"):
            raise ValueError(f"output_dtype must be 'int32' or 'int64', got {output_dtype!r}.")
        self.lowercase = bool(lowercase)
        self.strip_accents = self.lowercase if strip_accents is None else bool(strip_accents)
        self.max_input_chars_per_word = max_input_chars_per_word
        self.unk_token = unk_token
        self.suffix_indicator = suffix_indicator
        self.vocabulary_in_config = bool(vocabulary_in_config)
        self.output_dtype = output_dtype
        self.split_special_tokens = bool(split_special_tokens)
        self._vocab: list[str] | None = None
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)

    @classmethod
    def from_vocab_file(cls, path: str | os.PathLike, **kwargs) -> "FastWordPieceTokenizer":
        """Build from a ``vocab.txt`` (one token per line, line number = id)."""
        return cls(load_vocabulary(path), **kwargs)

    # ------------------------------------------------------------------ vocabulary
    def set_vocabulary(self, vocabulary: Sequence[str] | str | os.PathLike) -> None:
        """(Re)build the in-graph model from a token list or a ``vocab.txt`` path."""
        if isinstance(vocabulary, (str, os.PathLike)):
            tokens = load_vocabulary(vocabulary)
        else:
            tokens = [t.decode("utf-8") if isinstance(t, bytes) else t for t in vocabulary]
            bad = next((t for t in tokens if not isinstance(t, str)), None)
            if bad is not None:
                raise TypeError(f"Vocabulary entries must be str, got {type(bad).__name__}.")
            seen: dict[str, int] = {}
            for i, t in enumerate(tokens):
                if t in seen:
                    raise ValueError(f"Duplicate vocabulary entry {t!r} at ids {seen[t]} and {i}.")
                seen[t] = i
        if not tokens:
            raise ValueError("The vocabulary is empty.")
        if self.unk_token not in tokens:
            raise ValueError(f"The vocabulary has no unknown token {self.unk_token!r}; add it or pass "
                             f"unk_token=... (first tokens: {tokens[:5]}).")
        dtype = tf.as_dtype(self.output_dtype)
        self._vocab = tokens
        self._token_to_id = {t: i for i, t in enumerate(tokens)}
        self._unk_id = self._token_to_id[self.unk_token]
        # Words of over max_input_chars_per_word characters were replaced before (see normalize),
        # so a byte limit of 4 bytes per character never triggers on its own.
        self._fast = tf_text.FastWordpieceTokenizer(
            vocab=tokens, suffix_indicator=self.suffix_indicator,
            max_bytes_per_word=4 * self.max_input_chars_per_word, token_out_type=dtype,
            unknown_token=self.unk_token, no_pretokenization=False, support_detokenization=False)
        self._vocab_tensor = tf.constant(tokens)
        self._is_suffix = tf.constant([t.startswith(self.suffix_indicator) for t in tokens])
        self._maybe_long_word = f"(?s).*[^{_ASCII_BREAK}]{{{self.max_input_chars_per_word + 1},}}.*"
        specials = () if self.split_special_tokens else special_tokens_in(tokens, self.unk_token)
        self.special_tokens: tuple[str, ...] = specials
        # RE2 alternation is leftmost-first: longest first gives Hugging Face's leftmost-longest.
        self._special_pattern = "|".join(_re2_escape(t) for t in sorted(specials, key=len, reverse=True)) or None
        self._special_strings = tf.constant(list(specials) or [""])
        self._special_ids = tf.constant([self._token_to_id[t] for t in specials] or [-1], dtype)

    def get_vocabulary(self) -> list[str]:
        self._check_ready()
        return list(self._vocab)

    def vocabulary_size(self) -> int:
        self._check_ready()
        return len(self._vocab)

    def token_to_id(self, token: str) -> int:
        """The id of ``token``; a ValueError naming it if the vocabulary lacks it."""
        self._check_ready()
        if token not in self._token_to_id:
            raise ValueError(f"The vocabulary ({len(self._vocab)} tokens) has no {token!r} token.")
        return self._token_to_id[token]

    def id_to_token(self, id: int) -> str:
        self._check_ready()
        if not 0 <= int(id) < len(self._vocab):
            raise ValueError(f"Token id {id} is outside the vocabulary (size {len(self._vocab)}).")
        return self._vocab[int(id)]

    @property
    def pad_id(self) -> int:
        return self.token_to_id(SPECIAL_TOKENS["pad"])

    @property
    def cls_id(self) -> int:
        return self.token_to_id(SPECIAL_TOKENS["cls"])

    @property
    def sep_id(self) -> int:
        return self.token_to_id(SPECIAL_TOKENS["sep"])

    @property
    def mask_id(self) -> int:
        return self.token_to_id(SPECIAL_TOKENS["mask"])

    @property
    def unk_id(self) -> int:
        return self.token_to_id(self.unk_token)

    def _check_ready(self) -> None:
        if self._vocab is None:
            raise ValueError("This FastWordPieceTokenizer has no vocabulary yet: pass vocabulary=... "
                             "or load the saved model that carries it.")

    # ------------------------------------------------------------------ graph
    def normalize(self, text: tf.Tensor) -> tf.Tensor:
        """BERT normalisation with string ops (works on whole strings or single characters): control
        characters removed, accents stripped (NFD, then combining marks dropped) and lower-cased, as the
        tokenizer's settings say. The pure ``BasicTokenizer`` does the same character by character."""
        if self.strip_accents:
            text = tf_text.normalize_utf8(text, "NFD")
            text = tf.strings.regex_replace(text, f"[{_CONTROL}\\p{{Mn}}]", "")
        else:
            text = tf.strings.regex_replace(text, f"[{_CONTROL}]", "")
        if self.lowercase:
            text = tf.strings.regex_replace(text, "\u03a3", "\u03c3")  # Σ -> σ, never ς
            text = tf.strings.lower(text, encoding="utf-8")
        return text

    def _prepare(self, inputs) -> tuple[tf.Tensor, bool]:
        self._check_ready()
        if isinstance(inputs, str):
            check_text(inputs)  # unpaired surrogates: the same error as the pure tokenizer
            inputs = [inputs]
            scalar = True
        else:
            if isinstance(inputs, (list, tuple)):
                check_strings(inputs)
            inputs = tf.convert_to_tensor(inputs)
            scalar = inputs.shape.rank == 0
            if scalar:
                inputs = tf.reshape(inputs, [1])
        inputs = tf.convert_to_tensor(inputs)
        if inputs.dtype != tf.string:
            raise TypeError(f"FastWordPieceTokenizer takes strings, got a {inputs.dtype.name} tensor.")
        if inputs.shape.rank != 1:
            raise ValueError(f"Expected a scalar or a 1-D batch of strings, got shape {inputs.shape}.")
        # Bytes that are not UTF-8 (only a tensor or bytes can hold them) -> U+FFFD, which the
        # normaliser deletes: as the pure tokenizer on bytes.decode("utf-8", "replace").
        inputs = tf.strings.unicode_transcode(inputs, "UTF-8", "UTF-8", errors="replace",
                                              replacement_char=0xFFFD, replace_control_characters=False)
        return inputs, scalar

    def call(self, inputs):
        """Strings ``[batch]`` -> ragged ids ``[batch, (tokens)]`` (a scalar -> a 1-D tensor)."""
        text, scalar = self._prepare(inputs)
        if self._special_pattern is None:
            ids = self._ids(text)
        else:
            pieces, special_id, plain = self._split_specials(text)[:3]
            ids = self._with_specials(pieces, special_id, [self._ids(plain)])[0]
        return ids[0] if scalar else ids

    def _split_specials(self, text: tf.Tensor):
        """Cut each string around the special tokens written in it.

        Returns the ragged pieces ``[batch, (pieces)]`` with their byte starts and ends, each flat
        piece's special id (-1 for plain text) and the flat pieces with the specials emptied.
        """
        # regex_split stops at a NUL byte; U+0001 is deleted by the normaliser as NUL is, same size.
        text = tf.strings.regex_replace(text, "\\x00", "\x01")
        pieces, starts, ends = tf_text.regex_split_with_offsets(text, self._special_pattern,
                                                                   self._special_pattern)
        flat = pieces.flat_values
        match = tf.equal(tf.expand_dims(flat, 1), tf.expand_dims(self._special_strings, 0))
        special_id = tf.reduce_max(tf.where(match, self._special_ids, tf.constant(-1, self._special_ids.dtype)), 1)
        plain = tf.where(special_id >= 0, tf.constant(""), flat)
        return pieces, special_id, plain, starts, ends

    @staticmethod
    def _with_specials(pieces: tf.RaggedTensor, special_id: tf.Tensor, per_piece: list, special_values=None):
        """Put each special piece's value in front of its (empty) tokens and merge pieces per row."""
        is_special = special_id >= 0
        lengths = tf.cast(is_special, tf.int64)
        values = special_values or [special_id]
        out = []
        for plain, value in zip(per_piece, values):
            special = tf.RaggedTensor.from_row_lengths(tf.cast(tf.boolean_mask(value, is_special), plain.dtype),
                                                       lengths)
            merged = tf.concat([special, plain], axis=1)
            out.append(tf.RaggedTensor.from_row_splits(merged, pieces.row_splits).merge_dims(1, 2))
        return out

    def _ids(self, text: tf.Tensor) -> tf.RaggedTensor:
        """Ragged ids of strings without special tokens."""
        ids = self._fast.tokenize(self.normalize(text))
        # Rare rows that may hold a word of over max_input_chars_per_word characters (a run that
        # long without ASCII space or punctuation) take the exact, slower path.
        maybe_long = tf.strings.regex_full_match(text, self._maybe_long_word)
        index = tf.range(tf.shape(text, out_type=tf.int64)[0])
        slow_rows = tf.where(maybe_long)[:, 0]
        slow_ids = self._tokenize_with_offsets(tf.gather(text, slow_rows), "char")[0]
        position = tf.scatter_nd(tf.expand_dims(slow_rows, 1), tf.range(tf.size(slow_rows, out_type=tf.int64)),
                                 tf.shape(index, out_type=tf.int64))
        index = tf.where(maybe_long, tf.shape(index, out_type=tf.int64)[0] + position, index)
        return tf.gather(tf.concat([ids, tf.cast(slow_ids, ids.dtype)], axis=0), index)

    def tokenize(self, inputs):
        return self(inputs)

    def tokenize_with_offsets(self, inputs, unit: str = "char"):
        """``(ids, starts, ends)``, all ragged ``[batch, (tokens)]``; offsets into the ORIGINAL strings.

        ``unit="char"`` counts Unicode code points (Python ``str`` indices, like the pure tokenizer
        and Hugging Face); ``unit="byte"`` counts UTF-8 bytes (the tensorflow_text convention).

        >>> tok = FastWordPieceTokenizer(["[UNK]", "cafe", "##s"])
        >>> [t.to_list() for t in tok.tokenize_with_offsets(["  CAFÉS"])]
        [[[1, 2]], [[2, 6]], [[6, 7]]]
        """
        if unit not in ("char", "byte"):
            raise ValueError(f"unit must be 'char' or 'byte', got {unit!r}.")
        text, scalar = self._prepare(inputs)
        if self._special_pattern is None:
            out = self._tokenize_with_offsets(text, unit)
        else:
            pieces, special_id, plain, starts, ends = self._split_specials(text)
            ids, o_start, o_end = self._tokenize_with_offsets(plain, unit)
            p_start, p_end = starts.flat_values, ends.flat_values
            if unit == "char":  # byte offsets of the pieces -> character offsets
                row_text = tf.gather(text, pieces.value_rowids())
                prefix = tf.strings.substr(row_text, tf.zeros_like(p_start), p_start)
                p_start = tf.cast(tf.strings.length(prefix, unit="UTF8_CHAR"), tf.int64)
                p_end = p_start + tf.cast(tf.strings.length(pieces.flat_values, unit="UTF8_CHAR"), tf.int64)
            shift = tf.expand_dims(p_start, 1)
            out = tuple(self._with_specials(pieces, special_id, [ids, o_start + shift, o_end + shift],
                                            [special_id, p_start, p_end]))
        return tuple(t[0] for t in out) if scalar else out

    def _tokenize_with_offsets(self, text: tf.Tensor, unit: str):
        # 1. Normalise each original character on its own, remembering where its text lands.
        chars, char_byte_starts = tf.strings.unicode_split_with_offsets(text, "UTF-8")
        pieces = self.normalize(chars.flat_values)
        piece_len = tf.strings.length(pieces)                            # bytes
        piece_end = tf.cumsum(tf.cast(piece_len, tf.int64))              # global, inclusive ends
        normalized = tf.strings.reduce_join(chars.with_flat_values(pieces), axis=1)
        splits = chars.row_splits
        piece_start = tf.concat([tf.zeros([1], tf.int64), piece_end], 0)  # one extra: the total
        row_start = tf.gather(piece_start, splits[:-1])                  # global byte start of each row

        # 2. WordPiece on the normalised strings, with byte offsets into them.
        ids, starts, ends = self._fast.tokenize_with_offsets(normalized)
        rows = ids.value_rowids()
        flat_ids = ids.flat_values
        g_start = starts.flat_values + tf.gather(row_start, rows)
        g_end = ends.flat_values + tf.gather(row_start, rows)

        # 3. Words longer than max_input_chars_per_word characters -> one [UNK].
        flat_ids, g_start, g_end, rows = self._long_words_to_unk(
            flat_ids, g_start, g_end, rows, normalized, row_start)

        # 4. Normalised byte -> original character (the piece that holds the byte).
        first = tf.searchsorted(piece_end, g_start, side="right", out_type=tf.int64)
        last = tf.searchsorted(piece_end, g_end - 1, side="right", out_type=tf.int64)
        row_first_char = tf.gather(splits, rows)
        if unit == "char":
            o_start, o_end = first - row_first_char, last + 1 - row_first_char
        else:
            flat_byte_starts = tf.cast(char_byte_starts.flat_values, tf.int64)
            char_bytes = tf.cast(tf.strings.length(chars.flat_values), tf.int64)
            o_start = tf.gather(flat_byte_starts, first)
            o_end = tf.gather(flat_byte_starts, last) + tf.gather(char_bytes, last)
        nrows = tf.shape(text, out_type=tf.int64)[0]
        make = lambda v: tf.RaggedTensor.from_value_rowids(v, rows, nrows=nrows)  # noqa: E731
        return make(flat_ids), make(o_start), make(o_end)

    def _long_words_to_unk(self, ids, start, end, rows, normalized, row_start):
        """Collapse each word of more than ``max_input_chars_per_word`` characters into one [UNK]."""
        n = tf.shape(ids, out_type=tf.int64)[0]
        is_suffix = tf.gather(self._is_suffix, tf.cast(ids, tf.int32))
        new_row = tf.concat([[True], rows[1:] != rows[:-1]], 0)[:n]
        word_start = tf.logical_or(tf.logical_not(is_suffix), new_row)
        word = tf.cumsum(tf.cast(word_start, tf.int64)) - 1
        n_words = tf.maximum(tf.reduce_max(tf.concat([word, [-1]], 0)) + 1, 0)
        w_start = tf.math.unsorted_segment_min(start, word, n_words)
        w_end = tf.math.unsorted_segment_max(end, word, n_words)
        # Bytes >= characters: only words of over max_chars bytes need counting.
        cand = tf.where(w_end - w_start > self.max_input_chars_per_word)[:, 0]
        cand_rows = tf.gather(tf.math.unsorted_segment_min(rows, word, n_words), cand)
        cand_text = tf.strings.substr(tf.gather(normalized, cand_rows),
                                      tf.gather(w_start, cand) - tf.gather(row_start, cand_rows),
                                      tf.gather(w_end - w_start, cand))
        too_long = tf.strings.length(cand_text, unit="UTF8_CHAR") > self.max_input_chars_per_word
        long_word = tf.scatter_nd(tf.expand_dims(tf.boolean_mask(cand, too_long), 1),
                                  tf.ones_like(tf.boolean_mask(cand, too_long), dtype=tf.bool),
                                  tf.reshape(n_words, [1]))
        token_long = tf.gather(long_word, word)
        keep = tf.logical_or(tf.logical_not(token_long), word_start)
        ids = tf.where(token_long, tf.cast(self._unk_id, ids.dtype), ids)
        end = tf.where(token_long, tf.gather(w_end, word), end)
        return (tf.boolean_mask(ids, keep), tf.boolean_mask(start, keep), tf.boolean_mask(end, keep),
                tf.boolean_mask(rows, keep))

    def detokenize(self, ids):
        """Ids -> text: tokens joined by spaces, ``##`` pieces glued back (in graph)."""
        self._check_ready()
        if isinstance(ids, (list, tuple)):
            ids = tf.ragged.constant(ids) if ids and isinstance(ids[0], (list, tuple)) else tf.constant(ids)
        tokens = tf.gather(self._vocab_tensor, ids)
        text = tf.strings.reduce_join(tokens, axis=-1, separator=" ")
        prefix = _re_escape(self.suffix_indicator)
        text = tf.strings.regex_replace(text, " " + prefix, "")
        return tf.strings.regex_replace(text, "^" + prefix, "")

    # ------------------------------------------------------------------ saving
    def get_config(self) -> dict:
        config = super().get_config()
        config.update({
            "vocabulary": list(self._vocab) if (self.vocabulary_in_config and self._vocab is not None) else None,
            "lowercase": self.lowercase,
            "strip_accents": self.strip_accents,
            "max_input_chars_per_word": self.max_input_chars_per_word,
            "unk_token": self.unk_token,
            "suffix_indicator": self.suffix_indicator,
            "vocabulary_in_config": self.vocabulary_in_config,
            "output_dtype": self.output_dtype,
            "split_special_tokens": self.split_special_tokens,
        })
        return config

    def save_assets(self, dir_path: str) -> None:
        """Keras calls this when writing a ``.keras`` file: the vocabulary as ``vocabulary.txt``."""
        if self._vocab is not None:
            save_vocabulary(self._vocab, os.path.join(dir_path, VOCAB_ASSET))

    def load_assets(self, dir_path: str) -> None:
        path = os.path.join(dir_path, VOCAB_ASSET)
        if self._vocab is None and os.path.isfile(path):
            self.set_vocabulary(path)

    def compute_output_spec(self, inputs):  # ragged output: Keras cannot infer it symbolically
        return keras.KerasTensor((None, None), dtype=self.output_dtype, ragged=True)


def check_strings(texts) -> None:
    """Every element a ``str`` (checked as :func:`~bertcourse.text.normalize.check_text`) or ``bytes``."""
    for i, x in enumerate(texts):
        if isinstance(x, str):
            check_text(x, index=i)
        elif not isinstance(x, bytes):
            raise TypeError(f"Expected strings, got an element of type {type(x).__name__}.")


def _re2_escape(text: str) -> str:
    """Escape a literal for RE2 (every non-alphanumeric ASCII character gets a backslash)."""
    return "".join("\\" + c if (c.isascii() and not c.isalnum() and c != "_") else c for c in text)


def _re_escape(text: str) -> str:
    return "".join("\\" + c if not c.isalnum() else c for c in text)
