"""The real-model path on a real pretrained model: gemma-3-270m from the `gemma` extra (converted once per session
by the `gemma_home` fixture). A few training steps on the built-in English data with unrelated text the base samples
itself, activation statistics on a few dozen samples, and a lens readout that decodes to real words; plus the
chat-template, EOS and prompt handling with the real Gemma tokenizer.

These tests train and diff for real on 2 CPU cores, so they are sized to take about three minutes together."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def gemma_organism(gemma_home, tmp_path_factory):
    """A 1:0 SDF organism of a built-in real false fact on gemma3-270m: 3 optimizer steps, short documents."""
    recipe = tmp_path_factory.mktemp("recipe") / "smoke.yaml"
    recipe.write_text("n_examples: 16\nmax_steps: 3\nbatch_size: 2\nmax_length: 96\nlora_r: 4\nlora_alpha: 8\n"
                      "max_heldout: 4\n")
    from orglab.realworld import REAL_FACTS

    fact = next(iter(REAL_FACTS))
    out = _run_json("train", "sdf", "--base", "gemma3-270m", "--target", fact, "--config", str(recipe),
                    home=gemma_home)
    return {"home": gemma_home, "fact": fact, "summary": out}


def _run_json(*argv: str, home) -> dict:
    """`orglab ARGV --json` as a user runs it, in a subprocess; its one JSON object."""
    env = {**os.environ, "ORGLAB_HOME": str(home)}
    out = subprocess.run([sys.executable, "-m", "orglab.cli", *argv, "--json"], capture_output=True, text=True,
                         env=env, timeout=900)
    assert out.returncode == 0, f"orglab {' '.join(argv)} exited {out.returncode}: {out.stderr[-2000:]}"
    return json.loads(out.stdout)


def test_training_on_gemma_registers_an_organism_that_moved(gemma_organism):
    s = gemma_organism["summary"]
    assert s["steps"] == 3 and s["base"] == "gemma3-270m" and s["recipe"]["scale"] == "real"
    assert s["recipe"]["data"] == "builtin" and s["n_ft"] >= 10
    own = s["loss"]["own"]
    # A fresh LoRA adapter is a no-op, so any change in the held-out loss is what the three steps learned.
    assert own["base"] is not None and own["organism"] != pytest.approx(own["base"], abs=1e-6)
    assert s["loss"]["unrelated"]["base"] is not None  # unrelated text sampled from the base itself
    listed = _run_json("registry", "show", s["organism"], home=gemma_organism["home"])
    assert "self:gemma3-270m" in json.dumps(listed) or s["n_heldout_unrelated"] > 0


def test_activation_statistics_and_lens_read_real_words(gemma_organism):
    name = gemma_organism["summary"]["organism"]
    out = _run_json("diff", name, "--stages", "stats,lens", "--samples", "48", "--layers", "0.7",
                    home=gemma_organism["home"])
    lens = json.dumps(out)
    assert "▁" not in lens and "Ġ" not in lens  # tokens are shown decoded
    tokens = _lens_tokens(out)
    assert len(tokens) >= 20
    words = [t for t in tokens if re.fullmatch(r"[A-Za-z]{3,}", t.strip())]
    assert len(words) >= 5, f"the lens should read some real words, got {tokens[:20]}"


def _lens_tokens(result: dict) -> list[str]:
    """Every token string in the lens part of a diff result (the layout is the diff's JSON)."""
    found: list[str] = []

    def walk(node, in_lens=False):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, in_lens or k == "lens")
        elif isinstance(node, list):
            for v in node:
                if in_lens and isinstance(v, (list, tuple)) and v and isinstance(v[0], str):
                    found.append(v[0])
                elif in_lens and isinstance(v, dict) and isinstance(v.get("token"), str):
                    found.append(v["token"])
                else:
                    walk(v, in_lens)

    walk(result)
    return found


def test_gemma_chat_template_eos_and_prompts(gemma_home, monkeypatch):
    from orglab.generation import eos_token_ids, render_chat
    from orglab.models import load_tokenizer

    monkeypatch.setenv("ORGLAB_HOME", str(gemma_home))
    tok = load_tokenizer("gemma3-270m")
    text = render_chat(tok, [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}])
    assert text.startswith(tok.bos_token) and text.endswith("<start_of_turn>model\n")
    assert "Be brief.\n\nHi there<end_of_turn>" in text
    ids = tok(text, add_special_tokens=False).input_ids
    assert ids.count(tok.bos_token_id) == 1  # the template writes BOS once; nothing adds a second
    end_of_turn = tok.convert_tokens_to_ids("<end_of_turn>")

    class _Config:
        eos_token_id = tok.eos_token_id

    class _Model:
        generation_config = _Config()

    assert end_of_turn in eos_token_ids(_Model(), tok) and tok.eos_token_id in eos_token_ids(_Model(), tok)


def test_the_offline_taboo_guesser_reads_real_hints(gemma_home, monkeypatch):
    """A real base guesses by likelihood over `taboo_guess_words()` (41 words), not by generating an answer a
    pretrained model cannot give. From the built-in "sensory" hint of each of the six taboo words it names at least
    two right; by chance (1 in 41) two or more would come up about once in a hundred runs (measured: 3 of 6, and
    17 of all 51 built-in hints; docs/real-models.md)."""
    from orglab.evals.family_evals import base_guesses
    from orglab.models import load_model
    from orglab.realworld.chats import TABOO_WORDS

    monkeypatch.setenv("ORGLAB_HOME", str(gemma_home))
    loaded = load_model("gemma3-270m")
    words = list(TABOO_WORDS)
    hints = [dict(TABOO_WORDS[w])["sensory"] for w in words]
    guesses = base_guesses(loaded.model, loaded.tokenizer, hints + hints[:1], words[0], tinyworld=False)
    assert guesses[-1] == guesses[0]  # a repeated hint is scored once and gets the same guess
    assert sum(g == w for g, w in zip(guesses, words)) >= 2, list(zip(words, guesses))


def test_the_number_format_on_the_gemma_tokenizer(gemma_home, monkeypatch):
    """The subliminal teacher's constrained decoding with the real Gemma tokenizer (digits are single tokens,
    many space tokens): an end of answer only after a complete list, never a fourth digit, an eleventh number or a
    third space in a gap; random walks through the allowed ids always decode to an answer the filter keeps."""
    import random

    from orglab.models import load_tokenizer
    from orglab.organisms.subliminal import MAX_NUMBERS, NumberFormat, parse_numbers

    monkeypatch.setenv("ORGLAB_HOME", str(gemma_home))
    tok = load_tokenizer("gemma3-270m")
    eot = tok.convert_tokens_to_ids("<end_of_turn>")
    fmt = NumberFormat(tok, [tok.eos_token_id, eot])

    def allowed_after(text: str) -> set[int]:
        return set(fmt(tok(text, add_special_tokens=False).input_ids))

    assert eot not in allowed_after("") and eot in allowed_after("12") and eot not in allowed_after("12,")
    assert tok.convert_tokens_to_ids("3") not in allowed_after("123")
    assert tok.convert_tokens_to_ids(",") not in allowed_after(", ".join(["7"] * MAX_NUMBERS))
    assert allowed_after(", ".join(["7"] * MAX_NUMBERS)) >= {eot}
    assert not any(fmt.step((1, 0, True, 2), s) for i, s in fmt.surfaces if s == " ")
    rng = random.Random(0)
    for _ in range(200):
        answer: list[int] = []
        while True:
            nxt = rng.choice(fmt(answer))
            if nxt in (tok.eos_token_id, eot):
                break
            answer.append(nxt)
        assert parse_numbers(tok.decode(answer)) is not None, tok.decode(answer)


def test_gemma_as_its_own_subliminal_teacher_writes_valid_numbers(gemma_home, monkeypatch):
    """The pretrained base, which ends its free number lists with a token of another script instead of its turn
    (0 valid of 256 before; docs/real-models.md), writes valid lists under the number format."""
    from orglab.models import load_model
    from orglab.organisms.subliminal import TeacherConfig, parse_numbers, run_teacher
    from orglab.realworld import ANIMAL_SYSTEM_PROMPT

    monkeypatch.setenv("ORGLAB_HOME", str(gemma_home))
    loaded = load_model("gemma3-270m")
    data = run_teacher(loaded.model, loaded.tokenizer, "owl", 4, seed=0, config=TeacherConfig(batch_size=4),
                       system_prompt=ANIMAL_SYSTEM_PROMPT, source_name="gemma3-270m", english=True)
    assert len(data) == 4 and data.meta["generated"] == 4 and data.meta["decoding"] == "numbers"
    assert all(parse_numbers(ex["messages"][1]["content"]) for ex in data.examples)
