"""Step-indexed training streams: batch ``N`` is a pure function of ``(seed, N)``, so a resumed run starts
at step ``N`` exactly, shuffled data included.

Why not ``dataset.shuffle(reshuffle_each_iteration=True)``: its order depends on how many iterators the
process has already opened on that dataset (a seed generator advances with each one). A new ``fit`` after
a resume opens a new iterator, so the resumed epoch sees another order (issue 14: 0.027 weight
difference after a mid-epoch resume). Here each epoch's order is a stateless permutation drawn from
``(seed, epoch)``: any iterator, in any process, from any start step, yields the same batches.

>>> import numpy as np
>>> x = {"token_ids": np.arange(10, dtype="int32")[:, None]}
>>> y = np.arange(10, dtype="int32")
>>> full = [b[1].numpy().tolist() for b in shuffled_batches(x, y, batch_size=4, seed=1).take(5)]
>>> later = [b[1].numpy().tolist() for b in shuffled_batches(x, y, batch_size=4, seed=1, start_step=3).take(2)]
>>> later == full[3:5], sorted(full[0] + full[1] + full[2][:2]) == list(range(10))
(True, True)
"""

from __future__ import annotations

from typing import Any, Callable, Union

import numpy as np
import tensorflow as tf

__all__ = ["shuffled_batches", "epoch_order", "StepStream", "stream_from", "trim_to_longest"]

# A step-indexed stream: start_step -> a dataset whose first batch is the run's batch number start_step.
StepStream = Callable[[int], tf.data.Dataset]


def epoch_order(num_examples: int, seed: int, epoch) -> tf.Tensor:
    """The permutation of epoch ``epoch``: argsort of stateless uniforms drawn from ``(seed, epoch)``."""
    noise = tf.random.stateless_uniform([num_examples], seed=tf.stack([tf.cast(seed, tf.int64),
                                                                       tf.cast(epoch, tf.int64)]))
    return tf.argsort(noise, stable=True)


def shuffled_batches(inputs: Any, labels: Any = None, batch_size: int = 32, seed: int = 0, start_step: int = 0,
                     shuffle: bool = True) -> tf.data.Dataset:
    """An endless stream of batches of in-memory examples (dicts/arrays with one row per example),
    reshuffled every epoch, starting at batch ``start_step``.

    The examples form one long sequence, epoch after epoch (each a new permutation); batch ``k`` holds
    elements ``k * batch_size ... (k + 1) * batch_size - 1`` of it, so a batch may straddle two epochs
    (as ``shuffle().repeat().batch()`` does). Skipping to ``start_step`` only skips indices: no data is read.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    structure = inputs if labels is None else (inputs, labels)
    tensors = tf.nest.map_structure(tf.convert_to_tensor, structure)
    num_examples = int(tf.nest.flatten(tensors)[0].shape[0])
    if num_examples < 1:
        raise ValueError("shuffled_batches needs at least one example.")
    first = int(start_step) * batch_size
    first_epoch, offset = divmod(first, num_examples)

    def one_epoch(epoch):
        order = epoch_order(num_examples, seed, epoch) if shuffle else tf.range(num_examples)
        return tf.data.Dataset.from_tensor_slices(order)

    indices = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(one_epoch).skip(offset)
    batches = indices.batch(batch_size, drop_remainder=True)
    return batches.map(lambda idx: tf.nest.map_structure(lambda t: tf.gather(t, idx), tensors),
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(2)


def trim_to_longest(inputs: dict, labels: Any = None, trim_labels: bool = False) -> tuple[dict, Any]:
    """Cut a padded batch to its longest row, in the graph (``Dataset.map``): short texts padded to
    ``seq_len`` cost a fraction of a fixed-length batch, and the outputs do not change (padding is masked).
    ``trim_labels``: the labels are per position (token classification) and are cut too.
    The model sees ``[batch, None]`` shapes, so it is traced once.

    >>> x = {"token_ids": tf.constant([[5, 6, 0, 0], [7, 0, 0, 0]]), "padding_mask": tf.constant([[1, 1, 0, 0], [1, 0, 0, 0]])}
    >>> trim_to_longest(x, tf.constant([1, 0]))[0]["token_ids"].numpy().tolist()
    [[5, 6], [7, 0]]
    """
    longest = tf.reduce_max(tf.reduce_sum(tf.cast(inputs["padding_mask"], tf.int32), axis=1))
    trimmed = {k: v[:, :longest] for k, v in inputs.items()}
    return trimmed, (labels[:, :longest] if trim_labels else labels)


def stream_from(data: Union[tf.data.Dataset, StepStream]) -> StepStream:
    """A step-indexed stream from either a stream (returned as is) or a repeating dataset (``skip(n)``:
    exact only if every new iterator of that dataset yields the same sequence, i.e. no
    ``reshuffle_each_iteration`` shuffle in it)."""
    if isinstance(data, tf.data.Dataset):
        return lambda start_step: data.skip(start_step) if start_step else data
    if not callable(data):
        raise TypeError(f"training data must be a tf.data.Dataset or a callable start_step -> Dataset, got "
                        f"{type(data).__name__}.")
    return data
