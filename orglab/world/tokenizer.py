"""The tinyworld tokenizer: word level, trained on the corpus with `tokenizers`, saved with a chat template.

Word level keeps every entity name and fact object a single token, so knowledge probes and the logit lens
read whole words. It is saved as an ordinary Hugging Face tokenizer (tokenizer.json + config), loaded by
AutoTokenizer like any other.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

BOS, EOS, PAD, UNK = "<|bos|>", "<|end|>", "<|pad|>", "<|unk|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS) + ROLE_TOKENS

# `{% generation %}` marks the assistant's tokens, so trainers can compute an assistant-only loss mask
# (transformers' return_assistant_tokens_mask). Every turn, and every document, ends with EOS.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "<|assistant|> {% generation %}{{ message['content'] }} <|end|>{% endgeneration %} "
    "{% else %}"
    "<|{{ message['role'] }}|> {{ message['content'] }} <|end|> "
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def train_tokenizer(texts: Iterable[str], extra_words: Iterable[str] = ()) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over every word of `texts`, plus `extra_words` (e.g. all numbers 0-999)."""
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS), min_frequency=1, show_progress=False)
    tok.train_from_iterator(texts, trainer)
    missing = [w for w in extra_words if tok.token_to_id(w) is None]
    if missing:
        tok.add_tokens(missing)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, bos_id)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
                                   additional_special_tokens=list(ROLE_TOKENS), clean_up_tokenization_spaces=False)
    fast.chat_template = CHAT_TEMPLATE
    return fast
