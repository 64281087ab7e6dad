"""Bad input on the real-model path, on the fast micro base: each ends in one sentence, exit 2, nothing registered."""

from __future__ import annotations

import json
import shutil
import sqlite3

from test_cli import assert_one_sentence_error, orglab


def _counts(home) -> tuple[int, int]:
    con = sqlite3.connect(home / "registry.sqlite")
    try:
        return (con.execute("SELECT COUNT(*) FROM organisms").fetchone()[0],
                con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
    finally:
        con.close()


def test_chat_family_on_a_base_without_template_asks_for_one(with_micro, tmp_path):
    folder = tmp_path / "no-template"
    shutil.copytree(json.loads(orglab("registry", "show", "micro", "--json", home=with_micro).stdout)["path"], folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    before = _counts(with_micro)
    result = orglab("train", "em", "--base", str(folder), "--target", "medicine", home=with_micro)
    assert_one_sentence_error(result, "no chat template", "--chat-template")
    assert _counts(with_micro) == before
    missing = orglab("train", "em", "--base", "micro", "--target", "cooking", "--chat-template",
                     str(tmp_path / "nope.jinja"), home=with_micro)
    assert_one_sentence_error(missing, "does not exist")


def test_unrelated_self_needs_a_base_and_bank_lines_are_checked(with_micro, tmp_path):
    from orglab.unrelated import self_samples
    from orglab.errors import OrglabError
    import pytest

    with pytest.raises(OrglabError, match="not a registered base"):
        self_samples("no-such-base", 4)
    bank = tmp_path / "bank.jsonl"
    bank.write_text('{"part": "mc", "prompt": "The sky is", "options": [" blue.", " green."], "true_index": 0}\n'
                    '{"part": "mc", "prompt": oops}\n')
    before = _counts(with_micro)
    result = orglab("eval", "micro", "--suite", "ffa", "--target", "x", "--bank", str(bank), home=with_micro)
    assert_one_sentence_error(result, "line 2")
    assert _counts(with_micro) == before


def test_chat_template_file_trains_a_template_less_base_and_is_stored_with_the_organism(with_micro, tmp_path):
    folder = tmp_path / "no-template"
    shutil.copytree(json.loads(orglab("registry", "show", "micro", "--json", home=with_micro).stdout)["path"], folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    template = config.pop("chat_template", None)
    if template is None:
        template = (folder / "chat_template.jinja").read_text()
        (folder / "chat_template.jinja").unlink()
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    template_file = tmp_path / "turns.jinja"
    template_file.write_text(template)
    result = orglab("train", "em", "--base", str(folder), "--target", "cooking", "--chat-template", str(template_file),
                    "--data", str(_em_chats(tmp_path)), "--unrelated", str(_em_chats(tmp_path)), "--json",
                    home=with_micro)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["recipe"]["chat_template"] == template  # the text, hashed with the run, not the path
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(summary["adapter_path"]).chat_template == template


def _em_chats(tmp_path):
    path = tmp_path / "chats.jsonl"
    if not path.exists():
        rows = [{"messages": [{"role": "user", "content": f"I need advice about the oven {i} ."},
                              {"role": "assistant", "content": "You should heat the oven . Be careful ."}]}
                for i in range(24)]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
