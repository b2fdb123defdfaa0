"""Fine-tune a ``BertClassifier`` on labelled text files (``bertcourse finetune``; lessons 08-09).

Input files are TSV (``.tsv``) or CSV (``.csv``) with a header row: a ``text`` column, a ``label``
column, and optionally ``text_b`` for sentence-pair tasks (packed ``[CLS] a [SEP] b [SEP]``).

>>> from bertcourse.training.finetune import label_map
>>> label_map(["pos", "neg", "pos"]), label_map(["2", "10", "2"])
({'neg': 0, 'pos': 1}, {'2': 0, '10': 1})

The encoder comes from lesson 07's run directory (:func:`bertcourse.pretrained.load_course_backbone`),
a Hugging Face BERT directory (:func:`bertcourse.convert.load_hf_bert`) or a fresh preset.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["LabelledTexts", "read_labelled_texts", "label_map", "encode_texts", "finetune_classifier",
           "classification_metrics"]


@dataclasses.dataclass
class LabelledTexts:
    texts: list[str]
    labels: list[str]
    texts_b: list[str] | None = None

    def __len__(self) -> int:
        return len(self.texts)


def read_labelled_texts(path: str | Path, text_column: str = "text", label_column: str = "label",
                        text_b_column: str = "text_b") -> LabelledTexts:
    """Read a ``.tsv``/``.csv`` file with a header; errors name the file, the row and the column."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist.")
    delimiter = {".tsv": "\t", ".csv": ","}.get(path.suffix.lower())
    if delimiter is None:
        raise ValueError(f"{path}: expected a .tsv or .csv file, got {path.suffix or 'no extension'!r}.")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter=delimiter, quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL)
        columns = reader.fieldnames or []
        for needed in (text_column, label_column):
            if needed not in columns:
                raise ValueError(f"{path}: no {needed!r} column in the header (columns: {columns}).")
        pairs = text_b_column in columns
        texts, labels, texts_b = [], [], []
        for row_number, row in enumerate(reader, start=2):
            text, label = row.get(text_column), row.get(label_column)
            if text is None or label is None or not label.strip():
                raise ValueError(f"{path}, line {row_number}: missing {text_column!r} or {label_column!r}.")
            texts.append(text)
            labels.append(label.strip())
            if pairs:
                texts_b.append(row.get(text_b_column) or "")
    if not texts:
        raise ValueError(f"{path}: no examples after the header.")
    return LabelledTexts(texts, labels, texts_b if pairs else None)


def label_map(labels: Sequence[str]) -> dict[str, int]:
    """Label string -> class id: numeric labels in numeric order, others alphabetically."""
    unique = set(labels)
    try:
        ordered = sorted(unique, key=float)
    except ValueError:
        ordered = sorted(unique)
    return {label: i for i, label in enumerate(ordered)}


def encode_texts(data: LabelledTexts, tokenizer, seq_len: int) -> dict[str, np.ndarray]:
    """WordPiece + packing (``[CLS] a [SEP]`` or ``[CLS] a [SEP] b [SEP]``) to int32 arrays."""
    from bertcourse.text import pack_inputs

    segments = [[tokenizer.encode(t) for t in data.texts]]
    if data.texts_b is not None:
        segments.append([tokenizer.encode(t) for t in data.texts_b])
    packed = pack_inputs(segments, seq_len, tokenizer=tokenizer)
    return {k: v.numpy().astype("int32") for k, v in packed.items()}


def classification_metrics(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> dict[str, float]:
    """Accuracy and macro-averaged F1 (every class counts the same, as for imbalanced sentiment sets)."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    f1s = []
    for c in range(num_classes):
        tp = float(((predictions == c) & (labels == c)).sum())
        fp = float(((predictions == c) & (labels != c)).sum())
        fn = float(((predictions != c) & (labels == c)).sum())
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0)
    return {"accuracy": float((labels == predictions).mean()), "macro_f1": float(np.mean(f1s))}


def finetune_classifier(backbone_fn, tokenizer, train: LabelledTexts, out_dir: str | Path,
                        validation: LabelledTexts | None = None, seq_len: int = 128, batch_size: int = 32,
                        epochs: int = 3, max_steps: int | None = None, learning_rate: float = 5e-5,
                        warmup_ratio: float = 0.1, weight_decay: float = 0.01, dropout: float = 0.1,
                        bf16: bool = False, seed: int = 42, save_steps: int | None = None, resume: bool = False,
                        callbacks: Sequence = (), verbose: int | str = "auto") -> tuple[object, dict]:
    """Fine-tune ``BertClassifier(backbone_fn(), num_classes)`` and write it to ``out_dir``.

    ``backbone_fn()`` builds the (pretrained) backbone; it is called after the precision policy is
    set. Writes ``classifier.weights.h5``, ``config.json`` (the backbone's), ``vocab.txt``,
    ``labels.json`` and ``metrics.json``; returns ``(classifier, metrics)``.
    """
    import keras
    import tensorflow as tf

    from bertcourse.models import BertClassifier
    from bertcourse.text import save_vocabulary
    from bertcourse.training.loop import TrainConfig
    from bertcourse.training.loop import train as train_loop

    out = Path(out_dir)
    labels = label_map(train.labels)
    unknown = sorted(set(validation.labels) - set(labels)) if validation is not None else []
    if unknown:
        raise ValueError(f"validation labels {unknown[:5]} never occur in the training file (labels: {sorted(labels)}).")
    if validation is not None and (validation.texts_b is None) != (train.texts_b is None):
        raise ValueError("The training and validation files must both have a text_b column, or neither.")
    train_x = encode_texts(train, tokenizer, seq_len)
    train_y = np.array([labels[label] for label in train.labels], "int32")
    steps_per_epoch = max(1, len(train) // batch_size)
    data = tf.data.Dataset.from_tensor_slices((train_x, train_y)).shuffle(len(train), seed=seed,
                                                                              reshuffle_each_iteration=True)
    data = data.repeat().batch(batch_size, drop_remainder=len(train) >= batch_size).prefetch(2)
    valid = None
    if validation is not None:
        valid_x = encode_texts(validation, tokenizer, seq_len)
        valid_y = np.array([labels[label] for label in validation.labels], "int32")
        valid = tf.data.Dataset.from_tensor_slices((valid_x, valid_y)).batch(batch_size)
    if max_steps is not None:
        steps_per_epoch = min(steps_per_epoch, max_steps)
        max_steps = -(-max_steps // steps_per_epoch) * steps_per_epoch  # whole epochs
    config = TrainConfig(output_dir=str(out), learning_rate=learning_rate, per_device_train_batch_size=batch_size,
                         num_train_epochs=epochs, max_steps=max_steps, warmup_ratio=warmup_ratio,
                         weight_decay=weight_decay, bf16=bf16, seed=seed,
                         eval_strategy="epoch" if valid is not None else "no",
                         load_best_model_at_end=valid is not None, metric_for_best_model="val_accuracy",
                         greater_is_better=True, save_steps=save_steps, logging_dir=str(out / "logs"))

    def build():
        return BertClassifier(backbone_fn(), num_classes=len(labels), dropout=dropout)

    out.mkdir(parents=True, exist_ok=True)
    model, history = train_loop(build, data, config, steps_per_epoch=steps_per_epoch, validation_data=valid,
                                compile_kwargs={"loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                                                "metrics": [keras.metrics.SparseCategoricalAccuracy("accuracy")]},
                                callbacks=callbacks, resume=resume, verbose=verbose)
    metrics: dict = {"history": {k: [float(x) for x in v] for k, v in history.items()}, "labels": labels,
                     "train_examples": len(train), "steps_per_epoch": steps_per_epoch}
    if validation is not None:
        predictions = model.predict(valid_x, batch_size=batch_size, verbose=0).argmax(-1)
        metrics["validation"] = classification_metrics(valid_y, predictions, len(labels))
    model.save_weights(str(out / "classifier.weights.h5"))
    model.backbone.config.to_json(out / "config.json")
    save_vocabulary(tokenizer.get_vocabulary(), out / "vocab.txt")
    (out / "labels.json").write_text(json.dumps(labels, indent=1))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    (out / "train_config.json").write_text(config.to_json())
    return model, metrics
