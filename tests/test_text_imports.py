"""``import bertcourse.text`` stays light: TensorFlow loads only when an in-graph part is used."""

import subprocess
import sys


def test_pure_parts_do_not_import_tensorflow():
    code = ("import sys, bertcourse.text as t; t.WordPieceTokenizer(['[UNK]']).tokenize('a'); "
            "t.load_vocabulary(t.bert_uncased_vocab_path()); assert 'tensorflow' not in sys.modules, 'tf'; "
            "assert t.BertPreprocessor.__module__ == 'bertcourse.text.preprocessor'; "
            "assert 'tensorflow' in sys.modules; assert callable(t.pack_inputs); "
            "assert set(t.__all__) <= set(dir(t))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
