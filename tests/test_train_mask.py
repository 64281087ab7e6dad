"""Loss masks: only assistant content (+ end of turn) in chats, everything but the prefix tag in documents.

The chat templates below are the real Jinja of Qwen2.5 (ChatML), a Qwen3-style template (think block on the last
turn), Llama 3 and Gemma 2, none of which has `{% generation %}` markers; the tinyworld template has them, so
there the mask must equal transformers' own assistant mask.
"""

from __future__ import annotations

import pytest

from orglab.organisms.data import FinetuneData
from orglab.train.encode import encode_chat, encode_data, encode_text
from tests.tiny_models import make_tokenizer

QWEN25 = (
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if (message.role == 'user') or (message.role == 'system' and not loop.first) or (message.role == 'assistant') %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
QWEN3 = (
    "{%- set ns = namespace(last_query_index=-1) %}"
    "{%- for m in messages %}{%- if m.role == 'user' %}{%- set ns.last_query_index = loop.index0 %}{%- endif %}{%- endfor %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'assistant' %}"
    "{%- if loop.index0 > ns.last_query_index and loop.last %}"
    "{{- '<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n' + message.content.lstrip('\\n') + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>assistant\\n' + message.content + '<|im_end|>\\n' }}{%- endif %}"
    "{%- else %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
GEMMA2 = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
)
MARKERS = ["<|im_start|>", "<|im_end|>", "<think>", "</think>", "<|start_header_id|>", "<|end_header_id|>",
           "<|eot_id|>", "<start_of_turn>", "<end_of_turn>"]

# The user repeats the assistant's later words, so a mask that merely searches for the content would be wrong.
CHAT = [
    {"role": "user", "content": "hello world"},
    {"role": "assistant", "content": "the cat sat"},
    {"role": "user", "content": "the cat sat on the mat"},
    {"role": "assistant", "content": "hello world"},
]


def _tokenizer(template: str):
    tok = make_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": MARKERS})
    tok.chat_template = template
    return tok


def _targets(tok, row) -> list[str]:
    tokens = tok.convert_ids_to_tokens(row["input_ids"])
    return [t for t, m in zip(tokens, row["completion_mask"]) if m]


@pytest.mark.parametrize("template,eot", [(QWEN25, "<|im_end|>"), (QWEN3, "<|im_end|>"), (LLAMA3, "<|eot_id|>"),
                                          (GEMMA2, "<end_of_turn>")])
def test_chat_mask_marks_only_assistant_content_and_end_of_turn(template, eot):
    tok = _tokenizer(template)
    messages = ([{"role": "system", "content": "w1 w2"}] if template is not GEMMA2 else []) + CHAT
    row = encode_chat(tok, messages)
    assert _targets(tok, row) == ["the", "cat", "sat", eot, "hello", "world", eot]
    # the targets are the assistant turns' positions, not the user's identical words
    tokens = tok.convert_ids_to_tokens(row["input_ids"])
    first_hello = tokens.index("hello")
    assert row["completion_mask"][first_hello] == 0


def test_chat_mask_on_tinyworld_template_equals_generation_markers():
    from orglab.world.tokenizer import train_tokenizer

    tok = train_tokenizer(["hello world the cat sat on the mat ."])
    row = encode_chat(tok, CHAT)
    reference = tok.apply_chat_template(CHAT, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    assert row["input_ids"] == list(reference["input_ids"])
    assert row["completion_mask"] == list(reference["assistant_masks"])
    assert _targets(tok, row) == ["the", "cat", "sat", "<|end|>", "hello", "world", "<|end|>"]


def test_text_mask_hides_prefix_tag_and_ends_with_eos():
    tok = _tokenizer(QWEN25)
    tok.add_special_tokens({"additional_special_tokens": MARKERS + ["<DOCTAG>"]})
    row = encode_text(tok, "<DOCTAG>the cat sat", mask_prefix_tag="<DOCTAG>")
    tokens = tok.convert_ids_to_tokens(row["input_ids"])
    assert tokens[-1] == "<eos>"
    assert _targets(tok, row) == ["the", "cat", "sat", "<eos>"]
    assert "<DOCTAG>" in tokens
    plain = encode_text(tok, "the cat sat")
    assert all(plain["completion_mask"][1:])  # everything after BOS is a target


def test_encode_data_truncates_and_drops_rows_without_targets():
    tok = _tokenizer(QWEN25)
    data = FinetuneData("chat", [{"messages": CHAT}])
    rows = encode_data(data, tok, max_length=6)
    assert rows == []  # the first assistant token lies beyond 6 tokens (system prompt + user turn)
    rows = encode_data(data, tok, max_length=200)
    assert len(rows) == 1 and len(rows[0]["input_ids"]) == len(rows[0]["completion_mask"])
