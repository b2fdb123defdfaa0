"""Training: BERT's optimizer recipe and callbacks (lessons 07-08).

>>> from bertcourse.training import bert_adamw
"""

from bertcourse.training.callbacks import BestWeights, FillMaskProbe, ResumableCheckpoint
from bertcourse.training.loop import TrainConfig, enable_determinism, get_strategy, set_precision, train
from bertcourse.training.optim import BertAdamW, WarmupPolynomialDecay, bert_adamw, weight_decay_split

__all__ = ["bert_adamw", "BertAdamW", "WarmupPolynomialDecay", "weight_decay_split", "FillMaskProbe", "BestWeights",
           "ResumableCheckpoint", "TrainConfig", "train", "get_strategy", "set_precision", "enable_determinism"]
