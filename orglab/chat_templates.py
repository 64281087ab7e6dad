"""Chat templates orglab states for bases that ship without one.

A pretrained base (gemma-3-270m is one) has no chat template, yet the chat families (EM, subliminal, taboo), the
steering prompts and the chat evals all render conversations. orglab never joins turns as plain text silently:
a base converted by orglab (a GGUF file, orglab.bases) whose vocabulary holds its family's turn markers gets that
family's turn format, written into the converted folder's tokenizer and recorded in the base's registry entry,
so every organism trained on it, and its diff and evals, use the same template. Any other base without a
template needs `--chat-template FILE` for the chat families (orglab.train.api.with_chat_template).
"""

from __future__ import annotations

# Gemma's turn format (as Gemma's instruction-tuned checkpoints use it): a system message is folded into the first
# user turn, the assistant's role is called "model", and every turn ends with <end_of_turn>.
GEMMA_TURNS = (
    "{{ bos_token }}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "<start_of_turn>{{ role }}\n{{ (first_user_prefix if loop.first else '') ~ message['content'] | trim }}"
    "<end_of_turn>\n"
    "{% endfor -%}"
    "{%- if add_generation_prompt -%}<start_of_turn>model\n{% endif %}"
)

# model_type -> (template name, template, tokens the vocabulary must hold for it to apply)
DEFAULTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "gemma3_text": ("gemma-turns", GEMMA_TURNS, ("<start_of_turn>", "<end_of_turn>")),
    "gemma3": ("gemma-turns", GEMMA_TURNS, ("<start_of_turn>", "<end_of_turn>")),
    "gemma2": ("gemma-turns", GEMMA_TURNS, ("<start_of_turn>", "<end_of_turn>")),
    "gemma": ("gemma-turns", GEMMA_TURNS, ("<start_of_turn>", "<end_of_turn>")),
}


def default_template(model_type: str, tokenizer) -> tuple[str, str] | None:
    """(name, template) orglab states for a base of `model_type` without a template, or None when it has none
    to state (the vocabulary lacks the family's turn markers, or the architecture is not in DEFAULTS)."""
    entry = DEFAULTS.get(model_type)
    if entry is None:
        return None
    name, template, markers = entry
    vocab = tokenizer.get_vocab()
    if not all(m in vocab for m in markers):
        return None
    return name, template
