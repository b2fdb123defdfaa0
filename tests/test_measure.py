"""bertcourse.training.measure: one fresh process per setting, speed and peak memory read back."""

import pytest

from bertcourse import BertConfig
from bertcourse.training.measure import measure_training


def test_measures_a_real_step_in_a_fresh_process():
    r = measure_training("tiny", "float32", steps=2, batch_size=4, seq_len=32, vocab_size=500)
    assert r["tokens_per_second"] > 0
    assert r["peak_rss_mib"] > r["baseline_rss_mib"] > 50  # TensorFlow alone takes hundreds of MiB
    # the pretrainer = backbone + MLM transform (dense + LayerNorm) + output bias + NSP head
    backbone = BertConfig.preset("tiny", vocab_size=500, max_position_embeddings=128).num_parameters()
    assert r["parameters"] == backbone + (128 * 128 + 128) + 2 * 128 + 500 + (128 * 2 + 2)


def test_a_failing_setting_is_a_clear_error():
    with pytest.raises(RuntimeError, match="measuring giant/float32"):
        measure_training("giant", "float32", steps=1)
