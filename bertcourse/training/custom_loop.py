"""A custom training loop for any ``tf.distribute`` strategy, MultiWorkerMirroredStrategy included.

Keras 3's ``model.fit`` does not run under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585:
"Attempt to convert a value (PerReplica...)"). This loop does what ``fit``'s train step does, one
step at a time, with ``strategy.run``: forward pass, ``model.compute_loss`` (already divided by the
replica count, as in ``fit``), the optimizer's loss scaling, gradients, ``optimizer.apply`` (which
all-reduces the gradients across replicas and workers). Keras callbacks see the usual hooks.

>>> import keras, tensorflow as tf
>>> from bertcourse.training.custom_loop import fit_custom_loop
>>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
>>> model.compile(keras.optimizers.SGD(0.1), loss="mse")
>>> data = tf.data.Dataset.from_tensor_slices((tf.ones((8, 3)), tf.ones((8, 1)))).repeat().batch(4)
>>> history = fit_custom_loop(model, data, epochs=2, steps_per_epoch=3, verbose=0)
>>> sorted(history), len(history["loss"])
(['loss'], 2)
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

__all__ = ["fit_custom_loop", "is_multi_worker"]


def is_multi_worker(strategy=None) -> bool:
    """True for a ``MultiWorkerMirroredStrategy`` (the current one when ``strategy`` is None)."""
    strategy = strategy or tf.distribute.get_strategy()
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def _build(model, batch) -> None:
    """Create every variable (model, loss trackers, optimizer) in cross-replica context, from one
    undistributed batch, so nothing is created inside ``strategy.run``."""
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
    if not model.built:
        model(x)
    y_pred = model(x, training=False)
    model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False)
    model.optimizer.build(model.trainable_variables)
    for metric in model.metrics:  # compute_loss above counted one batch in the trackers: start clean
        metric.reset_state()


def fit_custom_loop(model, dataset, epochs: int, steps_per_epoch: int, callbacks: Sequence = (),
                    initial_epoch: int = 0, strategy=None, verbose: int | str = "auto") -> dict[str, list[float]]:
    """Train a compiled ``model`` on a repeating ``dataset`` of global batches; returns the history.

    Build and compile the model inside ``strategy.scope()``. Each worker passes the same dataset:
    ``strategy.experimental_distribute_dataset`` gives every replica its slice of each global batch,
    so two workers with global batch 16 make exactly the updates of one process with batch 16.
    Logged ``loss`` is the mean training loss of the epoch (as ``fit`` reports it).
    """
    if getattr(model, "optimizer", None) is None:
        raise ValueError("fit_custom_loop needs a compiled model: call model.compile(optimizer, loss) first.")
    if epochs <= initial_epoch or steps_per_epoch < 1:
        raise ValueError(f"Nothing to train: epochs={epochs}, initial_epoch={initial_epoch}, "
                         f"steps_per_epoch={steps_per_epoch}.")
    strategy = strategy or tf.distribute.get_strategy()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options)
    with strategy.scope():
        _build(model, next(iter(dataset)))
    distributed = iter(strategy.experimental_distribute_dataset(dataset))

    def replica_step(batch):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            scaled = model.optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, model.trainable_variables)
        model.optimizer.apply(grads, model.trainable_variables)
        return loss  # this replica's share: summed over replicas it is the global batch's mean loss

    @tf.function(jit_compile=False)
    def train_step(iterator):
        per_replica = strategy.run(replica_step, args=(next(iterator),))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    callback_list = keras.callbacks.CallbackList(list(callbacks), add_history=False, add_progbar=verbose != 0,
                                                 model=model, verbose=1 if verbose == "auto" else verbose,
                                                 epochs=epochs, steps=steps_per_epoch)
    history: dict[str, list[float]] = {}
    model.stop_training = False
    callback_list.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        callback_list.on_epoch_begin(epoch)
        total = 0.0
        for step in range(steps_per_epoch):
            callback_list.on_train_batch_begin(step)
            loss = float(train_step(distributed))
            total += loss
            callback_list.on_train_batch_end(step, {"loss": total / (step + 1)})
        logs = {"loss": total / steps_per_epoch}
        callback_list.on_epoch_end(epoch, logs)
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    return history
