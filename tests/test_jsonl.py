"""JSONL files orglab writes read back whole, whatever separators the text holds."""

from __future__ import annotations

from orglab.organisms.data import FinetuneData, read_jsonl

# Characters str.splitlines() breaks at but json.dumps(ensure_ascii=False) leaves raw inside a string.
SEPARATORS = "\u2028\u2029\x85\x1c\x1d\x1e\x0b\x0c"


def test_text_with_unicode_line_separators_round_trips(tmp_path):
    examples = [{"text": f"before{sep}after"} for sep in SEPARATORS] + [{"text": "plain"}]
    path = FinetuneData("text", examples).to_jsonl(tmp_path / "data.jsonl")
    assert read_jsonl(path) == examples
