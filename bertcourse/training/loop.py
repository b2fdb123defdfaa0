"""The training engine around ``model.fit`` (lesson 08): precision, distribution, and a
``TrainConfig`` whose fields are the Hugging Face ``TrainingArguments`` people already know.

>>> from bertcourse.training.loop import TrainConfig
>>> TrainConfig(learning_rate=2e-5, bf16=True).precision_policy
'mixed_bfloat16'
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Sequence

__all__ = ["set_precision", "get_strategy", "enable_determinism", "TrainConfig", "HF_TO_KERAS", "train"]

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


def set_precision(policy: str = "float32") -> str:
    """Set Keras' global dtype policy. ``mixed_bfloat16``: CPUs with AVX512-BF16 and TPUs;
    ``mixed_float16``: GPUs (``compile`` then wraps the optimizer in a ``LossScaleOptimizer``).
    Variables stay float32; the heads of this package compute their logits in float32."""
    import keras

    if policy not in POLICIES:
        raise ValueError(f"precision must be one of {POLICIES}, got {policy!r}.")
    keras.mixed_precision.set_global_policy(policy)
    return policy


def enable_determinism(seed: int = 42) -> None:
    """Seed Python, NumPy and the backend, and make TensorFlow's ops deterministic (slower, exact)."""
    import keras

    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def get_strategy(tpu: str | None = None, verbose: bool = True):
    """The right ``tf.distribute`` strategy for the hardware that is here.

    * a TPU is found (``tpu`` address or Colab/Cloud env) -> ``TPUStrategy``
    * ``TF_CONFIG`` names a cluster with workers -> ``MultiWorkerMirroredStrategy``
    * several GPUs (or several logical CPU devices configured for tests) -> ``MirroredStrategy``
    * otherwise the default strategy (one device)
    """
    import tensorflow as tf

    strategy = None
    if tpu is not None or os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR"):
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            strategy = tf.distribute.TPUStrategy(resolver)
        except (ValueError, tf.errors.NotFoundError, RuntimeError) as err:
            if tpu is not None:
                raise RuntimeError(f"No TPU at {tpu!r}: {err}") from None
    if strategy is None and os.environ.get("TF_CONFIG"):
        cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
        if len(cluster.get("worker", [])) + len(cluster.get("chief", [])) > 1:
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
    if strategy is None:
        gpus = tf.config.list_logical_devices("GPU")
        cpus = tf.config.list_logical_devices("CPU")
        if len(gpus) > 1:
            strategy = tf.distribute.MirroredStrategy()
        elif not gpus and len(cpus) > 1:
            strategy = tf.distribute.MirroredStrategy([d.name for d in cpus])
        else:
            strategy = tf.distribute.get_strategy()
    if verbose:
        print(f"strategy: {type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s)")
    return strategy


# Hugging Face TrainingArguments field -> what it becomes in Keras (shown in lesson 08).
HF_TO_KERAS = {
    "learning_rate": "peak LR of bert_adamw's WarmupPolynomialDecay",
    "per_device_train_batch_size": "tf.data batch size x strategy.num_replicas_in_sync",
    "num_train_epochs": "model.fit(epochs=...)",
    "max_steps": "model.fit(steps_per_epoch=..., epochs=...)",
    "warmup_ratio": "bert_adamw(warmup_ratio=...)",
    "weight_decay": "bert_adamw(weight_decay=...), LayerNorm/bias excluded by path",
    "max_grad_norm": "keras.optimizers.AdamW(global_clipnorm=...)",
    "adam_beta1 / adam_beta2 / adam_epsilon": "AdamW(beta_1, beta_2, epsilon)",
    "gradient_accumulation_steps": "AdamW(gradient_accumulation_steps=...)",
    "fp16 / bf16": "keras.mixed_precision.set_global_policy('mixed_float16' / 'mixed_bfloat16')",
    "seed": "keras.utils.set_random_seed + tf.config.experimental.enable_op_determinism",
    "eval_strategy='epoch'": "model.fit(validation_data=...) (evaluated every epoch)",
    "load_best_model_at_end + metric_for_best_model": "BestWeights(monitor=...) callback",
    "save_steps / resume_from_checkpoint": "ResumableCheckpoint(every_steps=...) + train(resume=True)",
    "logging_dir (TensorBoard)": "keras.callbacks.TensorBoard(log_dir=...)",
    "torch_compile": "model.compile(jit_compile=True) (XLA)",
}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training arguments with Hugging Face ``TrainingArguments`` names, mapped onto Keras.

    ``total_steps`` is derived from ``max_steps`` or epochs x steps per epoch by :func:`train`.
    """

    output_dir: str = "runs/train"
    learning_rate: float = 5e-5
    per_device_train_batch_size: int = 32
    num_train_epochs: int = 3
    max_steps: int | None = None
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float | None = 1.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-6
    gradient_accumulation_steps: int = 1
    fp16: bool = False
    bf16: bool = False
    seed: int = 42
    eval_strategy: str = "epoch"  # "epoch" or "no"
    load_best_model_at_end: bool = False
    metric_for_best_model: str = "val_loss"
    greater_is_better: bool = False
    save_steps: int | None = None
    jit_compile: bool = False
    logging_dir: str | None = None

    def __post_init__(self) -> None:
        if self.fp16 and self.bf16:
            raise ValueError("Choose one of fp16 and bf16, not both.")
        if self.eval_strategy not in ("epoch", "no"):
            raise ValueError(f"eval_strategy must be 'epoch' or 'no', got {self.eval_strategy!r}.")
        if self.gradient_accumulation_steps < 1 or self.per_device_train_batch_size < 1:
            raise ValueError("gradient_accumulation_steps and per_device_train_batch_size must be >= 1.")
        if self.load_best_model_at_end and self.eval_strategy == "no":
            raise ValueError("load_best_model_at_end needs evaluation: set eval_strategy='epoch'.")

    @property
    def precision_policy(self) -> str:
        return "mixed_float16" if self.fp16 else "mixed_bfloat16" if self.bf16 else "float32"

    def optimizer(self, total_steps: int):
        from bertcourse.training.optim import bert_adamw

        return bert_adamw(self.learning_rate, total_steps, warmup_ratio=self.warmup_ratio,
                          weight_decay=self.weight_decay, beta_1=self.adam_beta1, beta_2=self.adam_beta2,
                          epsilon=self.adam_epsilon, clipnorm=self.max_grad_norm,
                          gradient_accumulation_steps=self.gradient_accumulation_steps)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)


def train(build_model, train_data, config: TrainConfig, steps_per_epoch: int, validation_data=None,
          compile_kwargs: dict[str, Any] | None = None, callbacks: Sequence = (), resume: bool = False,
          verbose: int | str = "auto", loop: str = "auto"):
    """Build, compile and fit a model the ``TrainConfig`` way; returns ``(model, history_dict)``.

    ``build_model()`` is called after the precision policy is set (so layers pick it up);
    ``train_data`` is a ``tf.data.Dataset`` that repeats. With ``save_steps`` and ``resume=True``,
    training restarts exactly from the last good checkpoint in ``output_dir``.

    ``loop``: ``"fit"`` (Keras ``model.fit``), ``"custom"`` (:func:`~bertcourse.training.custom_loop.fit_custom_loop`,
    which also runs under ``MultiWorkerMirroredStrategy``, where ``fit`` fails), or ``"auto"``: custom
    under a multi-worker strategy, ``fit`` otherwise.
    """
    import keras

    from bertcourse.training.callbacks import BestWeights, ResumableCheckpoint
    from bertcourse.training.custom_loop import fit_custom_loop, is_multi_worker

    if loop not in ("auto", "fit", "custom"):
        raise ValueError(f"loop must be 'auto', 'fit' or 'custom', got {loop!r}.")
    custom = loop == "custom" or (loop == "auto" and is_multi_worker())
    if custom and validation_data is not None and config.eval_strategy == "epoch":
        raise ValueError("The custom loop trains only; evaluate after training, or use loop='fit' "
                         "(set eval_strategy='no' to train with validation_data ignored).")

    set_precision(config.precision_policy)
    enable_determinism(config.seed)
    model = build_model()
    total_micro_steps = config.max_steps * config.gradient_accumulation_steps if config.max_steps \
        else config.num_train_epochs * steps_per_epoch
    if total_micro_steps % steps_per_epoch:
        raise ValueError(f"The run's {total_micro_steps} batches must be a whole number of epochs of "
                         f"steps_per_epoch={steps_per_epoch}.")
    epochs = total_micro_steps // steps_per_epoch
    updates = max(1, total_micro_steps // config.gradient_accumulation_steps)
    model.compile(optimizer=config.optimizer(updates), jit_compile=config.jit_compile, **(compile_kwargs or {}))
    callbacks = list(callbacks)
    initial_step = 0
    if config.save_steps:
        ckpt = ResumableCheckpoint(os.path.join(config.output_dir, "checkpoints"), every_steps=config.save_steps)
        if resume:
            initial_step = ckpt.restore(model)
        callbacks.append(ckpt)
    if config.load_best_model_at_end:
        callbacks.append(BestWeights(config.metric_for_best_model, greater_is_better=config.greater_is_better))
    if config.logging_dir:
        callbacks.append(keras.callbacks.TensorBoard(config.logging_dir))
    data = train_data.skip(initial_step) if initial_step else train_data
    validation = validation_data if config.eval_strategy == "epoch" else None
    history: dict[str, list] = {}

    def run(epoch_from: int, epoch_to: int, steps: int, dataset) -> None:
        if custom:
            h = fit_custom_loop(model, dataset, epochs=epoch_to, steps_per_epoch=steps, callbacks=callbacks,
                                initial_epoch=epoch_from, verbose=verbose)
            for key, values in h.items():
                history.setdefault(key, []).extend(values)
            return
        h = model.fit(dataset, epochs=epoch_to, initial_epoch=epoch_from, steps_per_epoch=steps,
                      validation_data=validation, callbacks=callbacks, verbose=verbose).history
        for key, values in h.items():
            history.setdefault(key, []).extend(values)

    epoch, done_in_epoch = divmod(initial_step, steps_per_epoch)
    if done_in_epoch:  # a resumed run first finishes the interrupted epoch
        run(epoch, epoch + 1, steps_per_epoch - done_in_epoch, data)
        data = data.skip(steps_per_epoch - done_in_epoch)
        epoch += 1
    if epoch < epochs:
        run(epoch, epochs, steps_per_epoch, data)
    return model, history
