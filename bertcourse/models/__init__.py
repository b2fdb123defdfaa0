"""The networks, with no task logic: the BERT encoder (lesson 04) and the pretrainer with its MLM and
NSP heads (lesson 07). Task models (classifier, sentence encoder...) live in :mod:`bertcourse.tasks`.

>>> from bertcourse.models import BertBackbone, BertPretrainer
>>> BertBackbone("tiny").config.hidden_size
128
"""

from bertcourse.models.backbone import BertBackbone
from bertcourse.models.pretraining import BertPretrainer, CausalLMPretrainer

__all__ = ["BertBackbone", "BertPretrainer", "CausalLMPretrainer"]
