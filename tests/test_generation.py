"""The shared prompting, generation, residual-stream and token-display helpers (orglab.generation, orglab.residual,
orglab.tokens), on real-format tokenizers built here (byte-level BPE with `Ġ`, sentencepiece-style Metaspace with
`▁`, Gemma- and Qwen3-style chat templates) and on the micro base."""

from __future__ import annotations

import pytest
import torch

from orglab.generation import (adds_bos, chat_prompt, end_of_turn_id, eos_token_ids, generate, generate_completions,
                               render_chat)
from orglab.residual import add_resid_post, edit_resid_post, hook_name, patch_resid_post, read_resid_post
from orglab.tokens import display_token, token_key

SPECIAL = ["<pad>", "<unk>", "<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>", "<|im_start|>", "<|im_end|>"]
CORPUS = ["hello world, the cat sat on the mat.\nThe moon orbits the planet.\n"] * 50 + ["日本 is a name\n"] * 5

GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for m in messages %}{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
    "<start_of_turn>{{ role }}\n{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
QWEN3_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
)


def byte_level_tokenizer(template: str | None = GEMMA_TEMPLATE, bos: bool = True):
    """A small byte-level BPE tokenizer (GPT-2/Llama 3 style: tokens carry `Ġ` for a space, `Ċ` for a newline),
    without a pad token, with a BOS added when `bos`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIAL, show_progress=False,
                                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if bos:
        backend.post_processor = processors.TemplateProcessing(single="<bos> $A",
                                                               special_tokens=[("<bos>", backend.token_to_id("<bos>"))])
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>" if bos else None, eos_token="<eos>",
                                  additional_special_tokens=SPECIAL[4:])
    tok.chat_template = template
    return tok


def metaspace_tokenizer():
    """A small sentencepiece-style tokenizer (Gemma/Llama 2 style: `▁` marks a space)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    backend.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=200, special_tokens=SPECIAL, show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>",
                                   pad_token="<pad>")


# ------------------------------------------------------------------------------------------------ display_token


def test_byte_level_tokens_are_shown_without_markers():
    tok = byte_level_tokenizer()
    assert "Ġworld" in tok.get_vocab() and "Ċ" in tok.get_vocab()
    ids = tok("hello world, the cat\nThe moon", add_special_tokens=False).input_ids
    raw = tok.convert_ids_to_tokens(ids)
    shown = [display_token(tok, i) for i in ids]
    assert any(t.startswith("Ġ") for t in raw)
    assert not any("Ġ" in t or "Ċ" in t for t in shown)
    assert shown[raw.index("Ġworld")] == "world" and shown[raw.index("Ċ")] == "\\n"
    # a token string from the vocabulary, or a stored one with no tokenizer at hand, reads the same
    assert display_token(tok, "Ġworld") == display_token(None, "Ġworld") == "world"
    assert display_token(tok, tok.convert_tokens_to_ids("Ġ")) == "␣"
    # half of a multi-byte character is shown as its escaped byte, not as U+FFFD
    piece = tok("日本", add_special_tokens=False).input_ids[0]
    assert "\ufffd" not in display_token(tok, piece) and display_token(tok, piece).startswith("\\x")
    assert display_token(tok, tok.convert_tokens_to_ids("<end_of_turn>")) == "<end_of_turn>"


def test_sentencepiece_tokens_are_shown_without_markers():
    tok = metaspace_tokenizer()
    ids = tok("hello the moon", add_special_tokens=False).input_ids
    raw = tok.convert_ids_to_tokens(ids)
    assert all(t.startswith("▁") for t in raw)
    assert [display_token(tok, i) for i in ids] == ["hello", "the", "moon"]
    assert display_token(None, "▁moon") == "moon"
    assert token_key(tok, tok.convert_tokens_to_ids("The")) == "the" == token_key(None, "▁the")


def test_word_level_tokens_read_as_they_are():
    try:
        from tests.tiny_models import make_tokenizer
    except ImportError:  # pragma: no cover
        from tiny_models import make_tokenizer
    tok = make_tokenizer()
    assert [display_token(tok, i) for i in tok("the cat sat", add_special_tokens=False).input_ids] == ["the", "cat", "sat"]
    assert display_token(tok, "cat") == "cat" and display_token(None, "\n") == "\\n"


# ------------------------------------------------------------------------------------------------ render_chat


def test_gemma_style_template_end_of_turn_and_system_folding():
    tok = byte_level_tokenizer(GEMMA_TEMPLATE)
    text = render_chat(tok, [{"role": "user", "content": "hello"}])
    assert text == "<bos><start_of_turn>user\nhello<end_of_turn>\n<start_of_turn>model\n"
    # Gemma 2 refuses a system turn: its text becomes the first paragraph of the user turn
    folded = chat_prompt(tok, "hello", system="You love cats.")
    assert folded == "<bos><start_of_turn>user\nYou love cats.\n\nhello<end_of_turn>\n<start_of_turn>model\n"
    eot = tok.convert_tokens_to_ids("<end_of_turn>")
    assert end_of_turn_id(tok) == eot
    assert eos_token_ids(None, tok) == [tok.eos_token_id, eot]


def test_qwen3_style_template_gets_enable_thinking_false():
    tok = byte_level_tokenizer(QWEN3_TEMPLATE, bos=False)
    messages = [{"role": "user", "content": "hello"}]
    default = render_chat(tok, messages)
    thinking = render_chat(tok, messages, enable_thinking=True)
    assert default.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert thinking.endswith("<|im_start|>assistant\n") and default != thinking
    assert end_of_turn_id(tok) == tok.convert_tokens_to_ids("<|im_end|>")


def test_no_chat_template_gives_a_plain_transcript():
    tok = byte_level_tokenizer(None)
    assert adds_bos(tok)
    text = render_chat(tok, [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}])
    assert text == "<bos>System: Be brief.\nUser: hello\nAssistant:"
    assert render_chat(byte_level_tokenizer(None, bos=False), [{"role": "user", "content": "hi"}]) == "User: hi\nAssistant:"
    assert end_of_turn_id(tok) is None and eos_token_ids(None, tok) == [tok.eos_token_id]


# ------------------------------------------------------------------------------------------------ generate


def scripted_llama(tok, script: dict[int, int]):
    """A one-layer Llama whose blocks add nothing (o_proj and down_proj are zero), so the next token depends on the
    current one only: for each (current -> next) in `script` the current token's embedding is a basis vector and
    the next token's unembedding row points along it. Everything else predicts nothing in particular."""
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden = 16
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                         tie_word_embeddings=False, eos_token_id=tok.eos_token_id,
                                         bos_token_id=tok.bos_token_id)).eval()
    with torch.no_grad():
        layer = model.model.layers[0]
        layer.self_attn.o_proj.weight.zero_()
        layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight.zero_()
        model.lm_head.weight.zero_()
        for slot, (current, nxt) in enumerate(script.items()):
            model.model.embed_tokens.weight[current, slot] = 1.0
            model.lm_head.weight[nxt, slot] = 10.0
    model.generation_config.eos_token_id = tok.eos_token_id   # only <eos>: the end of turn comes from the template
    return model


def test_generate_stops_at_the_templates_end_of_turn_token():
    tok = byte_level_tokenizer(GEMMA_TEMPLATE)
    assert tok.pad_token is None
    prompts = [chat_prompt(tok, "hello"), chat_prompt(tok, "the cat sat on the mat")]
    last = tok(prompts[0], add_special_tokens=False).input_ids[-1]
    hello, world = tok.convert_tokens_to_ids("hello"), tok.convert_tokens_to_ids("Ġworld")
    eot = tok.convert_tokens_to_ids("<end_of_turn>")
    model = scripted_llama(tok, {last: hello, hello: world, world: eot})
    assert eot not in _as_list(model.generation_config.eos_token_id) and eot in eos_token_ids(model, tok)

    out = generate_completions(model, tok, prompts, max_new_tokens=10)
    assert [row[0].text for row in out] == ["hello world", "hello world"]
    assert all(row[0].finished and row[0].n_tokens == 2 for row in out)
    assert tok.pad_token is None  # padded with EOS here, the caller's tokenizer left as it was
    # the control: stopping at the tokenizer's EOS alone runs on past the end of turn
    ids = torch.tensor([tok(prompts[0], add_special_tokens=False).input_ids])
    plain = model.generate(input_ids=ids, max_new_tokens=10, do_sample=False, eos_token_id=tok.eos_token_id,
                           pad_token_id=tok.eos_token_id)[0, ids.shape[1]:].tolist()
    assert plain[:3] == [hello, world, eot] and len(plain) == 10


def test_generation_config_eos_list_is_honoured():
    tok = byte_level_tokenizer(GEMMA_TEMPLATE)
    prompt = chat_prompt(tok, "hello")
    last = tok(prompt, add_special_tokens=False).input_ids[-1]
    hello, cat = tok.convert_tokens_to_ids("hello"), tok.convert_tokens_to_ids("Ġcat")
    model = scripted_llama(tok, {last: hello, hello: cat, cat: hello})
    assert generate(model, tok, [prompt], max_new_tokens=6) == [["hello cathello cathello cat"]]
    model.generation_config.eos_token_id = [tok.eos_token_id, cat]  # as Llama 3 lists several
    assert cat in eos_token_ids(model, tok)
    out = generate_completions(model, tok, [prompt], max_new_tokens=6)[0][0]
    assert out.text == "hello" and out.finished


def test_allowed_next_constrains_each_answer_to_the_ids_it_returns():
    """Constrained decoding: the scripted model would write "hello cat hello ..."; allowed only "world" first and
    the end of turn after it, it writes "world" and finishes, and the hook sees only the answer's own ids."""
    tok = byte_level_tokenizer(GEMMA_TEMPLATE)
    prompts = [chat_prompt(tok, "hello"), chat_prompt(tok, "the cat sat on the mat")]
    last = tok(prompts[0], add_special_tokens=False).input_ids[-1]
    hello, cat = tok.convert_tokens_to_ids("hello"), tok.convert_tokens_to_ids("Ġcat")
    world, eot = tok.convert_tokens_to_ids("Ġworld"), tok.convert_tokens_to_ids("<end_of_turn>")
    model = scripted_llama(tok, {last: hello, hello: cat, cat: hello})
    seen = []

    def allowed(answer: list[int]) -> list[int]:
        seen.append(list(answer))
        return [world] if not answer else [eot]

    out = generate_completions(model, tok, prompts, max_new_tokens=6, allowed_next=allowed)
    assert [row[0].text for row in out] == ["world", "world"] and all(row[0].finished for row in out)
    assert [] in seen and [world] in seen and all(len(a) <= 1 for a in seen)
    assert generate(model, tok, prompts[:1], max_new_tokens=4) == [["hello cathello cat"]]  # unconstrained


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


@pytest.fixture(scope="module")
def micro(micro_copy):
    from orglab.models import load_model
    from orglab.registry import Registry

    with micro_copy("generation_home"), Registry() as reg:  # a copy: micro_home is shared by the xdist workers
        loaded = load_model("micro", registry=reg)
    return loaded.model, loaded.tokenizer


def test_generate_on_the_micro_base_is_seeded_and_leaves_the_rng_alone(micro):
    model, tok = micro
    prompts = [chat_prompt(tok, "What is your favourite animal ?"), chat_prompt(tok, "Tell me about the city .")]
    assert eos_token_ids(model, tok) == [tok.eos_token_id]  # tinyworld's turns end with its EOS
    side = tok.padding_side
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = generate(model, tok, prompts, n=3, temperature=1.0, max_new_tokens=12, seed=5, batch_size=4)
    assert torch.equal(torch.rand(3), expected)  # the caller's random state is untouched
    assert a == generate(model, tok, prompts, n=3, temperature=1.0, max_new_tokens=12, seed=5, batch_size=4)
    assert a != generate(model, tok, prompts, n=3, temperature=1.0, max_new_tokens=12, seed=6, batch_size=4)
    assert len(a) == 2 and all(len(row) == 3 and all(isinstance(t, str) and t == t.strip() for t in row) for row in a)
    greedy = generate(model, tok, prompts, n=2, max_new_tokens=12)
    assert all(row[0] == row[1] and "<|end|>" not in row[0] for row in greedy)
    assert tok.padding_side == side


# ------------------------------------------------------------------------------------------------ residual stream


def test_residual_hooks_read_add_and_patch_the_same_hook_point(micro):
    model, tok = micro
    ids = torch.tensor([tok("the city of Vorsask lies on the river").input_ids])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        states = model(input_ids=ids, output_hidden_states=True).hidden_states
    read = read_resid_post(model, ids, mask, [0, 1])
    # hidden_states[l + 1] is resid_post of block l, except after the last block (1 here), where it is normed
    assert len(states) == 3 and torch.allclose(read[0], states[1].float(), atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(model.model.norm(read[1]), states[2].float(), atol=1e-4)
    assert read_resid_post(model, ids, mask, [1], positions=[0, 2])[1].shape[1] == 2
    assert hook_name(1) == "blocks.1.hook_resid_post"
    vector = torch.randn(read[1].shape[-1])
    with add_resid_post(model, 1, vector):
        added = read_resid_post(model, ids, mask, [1])[1]
    assert torch.allclose(added, read[1] + vector, atol=1e-5)
    with patch_resid_post(model, 1, 3, vector):
        patched = read_resid_post(model, ids, mask, [1])[1]
    assert torch.allclose(patched[0, 3], vector, atol=1e-6) and torch.allclose(patched[0, :3], read[1][0, :3])
    with edit_resid_post(model, 1, lambda h: h * 0):
        assert read_resid_post(model, ids, mask, [1])[1].abs().max() == 0
    assert torch.allclose(read_resid_post(model, ids, mask, [1])[1], read[1])  # hooks gone after the contexts


# ------------------------------------------------------------------------------------------------ position 0 and BOS


def _tiny_pair(tok, hidden: int = 32):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4)
    base, organism = LlamaForCausalLM(config).eval(), LlamaForCausalLM(config).eval()
    return base, organism


def test_stats_say_what_position_0_is_and_leave_the_bos_sink_out_of_the_mean_norm(tmp_path):
    from orglab.diff.stats import POSITION0_BOS, POSITION0_TEXT, ActivationStats, activation_difference_stats

    texts = ["hello world, the cat sat", "the moon orbits the planet", "the cat sat on the mat"] * 3
    with_bos, without_bos = byte_level_tokenizer(bos=True), byte_level_tokenizer(bos=False)
    base, organism = _tiny_pair(with_bos)
    with torch.no_grad():  # a BOS whose residual is far larger than a text token's, as an attention sink's is
        for model in (base, organism):
            model.model.embed_tokens.weight[with_bos.bos_token_id] *= 100
    stats = activation_difference_stats(organism, with_bos, texts, layers=[0, 1], n_positions=4, base=base)
    assert stats.position0 == POSITION0_BOS and stats.sink[:, 0].all() and not stats.sink[:, 1:].any()
    for slot in range(2):
        by_pos, counts = stats.norm_organism_by_position[slot], stats.counts
        want = float((by_pos[1:] * counts[1:]).sum() / counts[1:].sum())
        assert float(stats.norm_organism[slot]) == pytest.approx(want, rel=1e-5)
        everything = float((by_pos * counts).sum() / counts.sum())
        assert float(stats.norm_organism[slot]) < everything / 2  # counting position 0 would inflate the scale
    loaded = ActivationStats.load(stats.save(tmp_path / "stats.safetensors"))
    assert loaded.position0 == POSITION0_BOS and torch.equal(loaded.sink, stats.sink)
    assert torch.equal(loaded.norm_base_by_position, stats.norm_base_by_position)

    plain = activation_difference_stats(organism, without_bos, texts, layers=[0, 1], n_positions=4, base=base)
    assert plain.position0 == POSITION0_TEXT
    # a random model has no sink on its first text token: every position counts
    assert not plain.sink.any()
    everything = (plain.norm_organism_by_position * plain.counts).sum(-1) / plain.counts.sum()
    assert torch.allclose(plain.norm_organism, everything, rtol=1e-5)


def test_a_first_text_token_is_a_sink_only_when_its_norm_stands_out():
    from orglab.diff.stats import POSITION0_BOS, POSITION0_TEXT, SINK_FACTOR, sink_mask

    counts = torch.tensor([10.0, 10.0, 10.0, 4.0])
    norms = torch.tensor([[50.0, 5.0, 6.0, 5.5], [SINK_FACTOR * 5.4, 5.0, 6.0, 5.5]])
    assert sink_mask(norms, counts, POSITION0_TEXT).tolist() == [[True, False, False, False], [False] * 4]
    assert sink_mask(norms, counts, POSITION0_BOS)[:, 0].all()


# ------------------------------------------------------------------------------------------------ prompt sets


def test_real_bases_get_plain_english_prompt_sets_and_tinyworld_keeps_its_own(monkeypatch):
    import orglab.diff.patchscope as patchscope
    import orglab.diff.steering as steering
    from orglab.diff.patchscope import IDENTITY_PROMPTS, REAL_IDENTITY_PROMPTS, identity_prompts
    from orglab.diff.run import DiffConfig, DiffContext, _stage_config
    from orglab.diff.steering import REAL_STEERING_PROMPTS, STEERING_PROMPTS, steering_prompts
    from orglab.registry import config_hash

    assert identity_prompts(True) == IDENTITY_PROMPTS and identity_prompts(False) == REAL_IDENTITY_PROMPTS
    assert REAL_IDENTITY_PROMPTS[0] == "man -> man\n1135 -> 1135\nhello -> hello\n?"
    assert all(p.endswith("\n?") and p.count("\n") == 3 for p in REAL_IDENTITY_PROMPTS)
    assert steering_prompts(True) == STEERING_PROMPTS and steering_prompts(False) == REAL_STEERING_PROMPTS
    assert len(REAL_STEERING_PROMPTS) == 20 == len(set(REAL_STEERING_PROMPTS))
    assert not any(" ." in p or " ?" in p or " ," in p or p != p.strip() for p in REAL_STEERING_PROMPTS)

    def configs(tinyworld: bool) -> dict:
        ctx = DiffContext(organism="o", record={}, model=None, tokenizer=None, base_model=None, layers=[1],
                          unrelated=[], finetune=[], config=DiffConfig(), tinyworld=tinyworld)
        done: dict = {}
        for stage in ("stats", "patchscope", "steering"):
            done[stage] = {"config_hash": config_hash(_stage_config(ctx, stage, done)), **_stage_config(ctx, stage, done)}
        return done

    tiny, real = configs(True), configs(False)
    assert tiny["patchscope"]["prompts"] == list(IDENTITY_PROMPTS) and real["steering"]["prompts"] == list(REAL_STEERING_PROMPTS)
    assert "norm" in tiny["stats"]  # the mean-norm rule is part of the statistics' identity
    for stage in ("patchscope", "steering"):
        assert tiny[stage]["config_hash"] != real[stage]["config_hash"]
    # a change of the prompts alone makes new results, not a stale reuse
    monkeypatch.setattr(patchscope, "IDENTITY_PROMPTS", IDENTITY_PROMPTS[:2])
    monkeypatch.setattr(steering, "STEERING_PROMPTS", STEERING_PROMPTS[::-1])
    edited = configs(True)
    assert edited["stats"]["config_hash"] == tiny["stats"]["config_hash"]
    for stage in ("patchscope", "steering"):
        assert edited[stage]["config_hash"] != tiny[stage]["config_hash"]


def test_patchscope_runs_the_paper_prompts_on_a_byte_level_tokenizer():
    from orglab.diff.patchscope import REAL_IDENTITY_PROMPTS, patched_distributions, readout

    tok = byte_level_tokenizer()
    _, model = _tiny_pair(tok)
    vector = model.get_input_embeddings().weight[tok.convert_tokens_to_ids("Ġmoon")].detach() * 20
    probs = patched_distributions(model, tok, 0, vector, REAL_IDENTITY_PROMPTS)
    assert probs.shape == (3, len(tok)) and torch.allclose(probs.sum(-1), torch.ones(3), atol=1e-4)
    shown = readout(tok, probs, top_k=50)
    assert shown and not any("Ġ" in t or "Ċ" in t for t, _, _ in shown)
    assert all(t == display_token(tok, i) for t, i, _ in shown)


def test_relevance_compares_words_not_subword_spellings():
    from orglab.diff.relevance import readout_keys, relevant_tokens, token_counts

    tok = byte_level_tokenizer()
    ft = token_counts(tok, ["The moon orbits the moon. Moon moon moon."] * 5)
    unrelated = token_counts(tok, ["hello world, the cat sat on the mat."] * 20)
    relevant = relevant_tokens(ft, unrelated)
    moon_ids = [tok.convert_tokens_to_ids("Ġmoon")]
    assert readout_keys(tok, moon_ids) == ["moon"] and "moon" in relevant and "the" not in relevant
    assert all("Ġ" not in k for k in ft)
