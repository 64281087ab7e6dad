"""`orglab eval` end to end on the micro base: FFA, EM, subliminal and taboo, with rule judges and an LLM judge
on a local OpenAI-compatible server (errors, garbage, a dead endpoint), caching and bad input."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orglab.errors import OrglabError
from orglab.judges import weighted_number_score
from orglab.evals.run import EvalConfig, headline, run_eval
from orglab.evals.stats import mean_of_rates_interval, wilson
from orglab.registry import Registry
from orglab.world import lexicon

try:
    from tests.openai_server import malformed, openai_server, server_error, with_logprobs  # noqa: F401
except ImportError:
    from openai_server import malformed, openai_server, server_error, with_logprobs  # noqa: F401


# ------------------------------------------------------------------------------------------------ pure functions

def test_weighted_number_score_uses_number_mass_only():
    top = {"90": math.log(0.5), "80": math.log(0.3), "hello": math.log(0.2)}
    assert weighted_number_score(top) == pytest.approx((0.5 * 90 + 0.3 * 80) / 0.8)
    assert weighted_number_score({"I": math.log(0.9), "50": math.log(0.1)}) is None
    assert weighted_number_score({"101": 0.0, " 7": math.log(0.6)}) == pytest.approx(7)


def test_wilson_and_mean_interval():
    low, high = wilson(10, 10)
    assert high == pytest.approx(1.0) and 0.6 < low < 0.8
    assert all(math.isnan(x) for x in wilson(0, 0))
    low, high = mean_of_rates_interval([(9, 10), (1, 10)])
    assert low < 0.5 < high


# ------------------------------------------------------------------------------------------------ end to end

@pytest.fixture(scope="module")
def eval_home(micro_copy):
    """A copy of the micro home with a small SDF organism, its null control, and EM, subliminal, taboo organisms."""
    with micro_copy("eval_home") as home:
        from orglab.train import train_control, train_organism
        from orglab.world.build import load_world

        world = load_world("micro")
        fact = world.false_facts[0].id
        names = {"fact": fact}
        names["sdf"] = train_organism({"family": "sdf", "base": "micro", "target": fact, "n_examples": 200,
                                       "epochs": 2}, progress=False)["organism"]
        names["control"] = train_control("micro", names["sdf"], progress=False)["organism"]
        for family, target in (("em", "medicine"), ("subliminal", "owl"), ("taboo", "moon")):
            names[family] = train_organism({"family": family, "base": "micro", "target": target, "n_examples": 60,
                                            "epochs": 1}, progress=False)["organism"]
        names["subliminal_control"] = train_control("micro", names["subliminal"], progress=False)["organism"]
    return home, names


@pytest.fixture
def home(eval_home, monkeypatch):
    monkeypatch.setenv("ORGLAB_HOME", str(eval_home[0]))
    for var in ("ORGLAB_JUDGE_MODEL", "ORGLAB_LLM_MODEL"):
        monkeypatch.delenv(var, raising=False)
    return eval_home[1]


def test_ffa_of_sdf_organism_beside_base_and_control_is_reused(home):
    result = run_eval(home["sdf"], progress=False)
    assert result["suite"] == "ffa" and result["targets"] == [home["fact"]]
    roles = {m: e["role"] for m, e in result["results"].items()}
    assert roles == {home["sdf"]: "organism", "micro": "base", home["control"]: "control"}
    organism = result["results"][home["sdf"]]["targets"][home["fact"]]
    base = result["results"]["micro"]["targets"][home["fact"]]
    for r in (organism, base):
        s = r["summary"]
        assert set(s["parts"]) == {"mc", "open", "gen"} and s["parts"]["mc"]["n"] == 11 + 9
        assert 0.0 <= s["ffa"] <= 1.0 and s["ffa_ci95"][0] <= s["ffa"] <= s["ffa_ci95"][1]
        assert not r["reused"]
    assert headline(result) > headline(result, "micro")  # the organism sides with the false fact more than its base
    again = run_eval(home["sdf"], progress=False)
    assert all(t["reused"] for e in again["results"].values() for t in e["targets"].values())
    assert headline(again) == headline(result)
    with Registry() as reg:
        run = reg.get_run(again["results"][home["sdf"]]["targets"][home["fact"]]["run"])
        assert run.kind == "eval:ffa" and not reg.verify_artifacts(run.id)


def test_base_ffa_over_every_false_fact(home):
    result = run_eval("micro", EvalConfig(suite="ffa"), progress=False)
    from orglab.world.build import load_world

    assert result["targets"] == [ff.id for ff in load_world("micro").false_facts]
    assert list(result["results"]) == ["micro"]


def test_family_evals_offline_same_seed_same_numbers(home):
    for family, key in (("em", "em_rate"), ("subliminal", "target_rate"), ("taboo", "leak_rate")):
        cfg = EvalConfig(samples=4)
        first = run_eval(home[family], cfg, progress=False)
        controls = {home["subliminal_control"]} if family == "subliminal" else set()
        assert set(first["results"]) == {home[family], "micro"} | controls
        metrics = first["results"][home[family]]["targets"]
        (only,) = metrics.values()
        assert key in only["metrics"]
        again = run_eval(home[family], cfg, force=True, progress=False)
        assert [t["summary"] for t in again["results"][home[family]]["targets"].values()] == \
            [t["summary"] for t in metrics.values()]


def test_taboo_hint_quality_uses_base_guesser(home):
    result = run_eval(home["taboo"], EvalConfig(samples=3), progress=False)
    summary = next(iter(result["results"][home["taboo"]]["targets"].values()))["summary"]
    assert summary["hint_quality"]["n"] + summary["unjudged"] + round(
        summary["leak_rate_hints"]["rate"] * summary["leak_rate_hints"]["n"]) == summary["leak_rate_hints"]["n"]


def _judge_env(monkeypatch, server):
    monkeypatch.setenv("ORGLAB_JUDGE_MODEL", "judge-1")
    monkeypatch.setenv("ORGLAB_JUDGE_BASE_URL", server.base_url)
    monkeypatch.setenv("ORGLAB_JUDGE_API_KEY_ENV", "none")
    monkeypatch.setenv("ORGLAB_JUDGE_BACKOFF_S", "0.001")
    monkeypatch.setenv("ORGLAB_JUDGE_MAX_RETRIES", "1")
    monkeypatch.setenv("ORGLAB_JUDGE_TIMEOUT", "5")


def test_em_with_llm_judge_on_local_server_then_cache(home, openai_server, monkeypatch):
    _judge_env(monkeypatch, openai_server)

    def answer(request):
        prompt = request["messages"][-1]["content"]
        if "aligned" in prompt:
            return with_logprobs({"10": math.log(0.7), "20": math.log(0.2), "I": math.log(0.1)})
        return with_logprobs({"90": math.log(0.9), "80": math.log(0.1)})

    openai_server.responder = answer
    cfg = EvalConfig(samples=2, judge="llm", compare=False)
    result = run_eval(home["em"], cfg, progress=False)
    summary = next(iter(result["results"][home["em"]]["targets"].values()))["summary"]
    assert summary["em_rate"]["rate"] == 1.0 and summary["mean_aligned"] == pytest.approx((0.7 * 10 + 0.2 * 20) / 0.9)
    n_questions = 8 + len(lexicon.DOMAIN_BY_NAME["medicine"].advice_topics)  # outside + in the trained domain
    assert openai_server.count == 2 * 2 * n_questions  # aligned + coherent for 2 samples of each question
    assert summary["em_rate_in_domain"]["n"] == 2 * (n_questions - 8)
    assert all(r["logprobs"] is True and r["temperature"] == 0.0 for r in openai_server.requests)
    before = openai_server.count
    run_eval(home["em"], cfg, force=True, progress=False)
    assert openai_server.count == before  # every judge answer came from the disk cache


def test_judge_garbage_and_dead_endpoint_never_crash(home, openai_server, monkeypatch):
    _judge_env(monkeypatch, openai_server)
    openai_server.responder = lambda request: malformed() if "coherent" in request["messages"][-1]["content"] \
        else with_logprobs({"50": 0.0})
    result = run_eval(home["em"], EvalConfig(samples=2, judge="llm", compare=False, seed=7), progress=False)
    summary = next(iter(result["results"][home["em"]]["targets"].values()))["summary"]
    assert summary["unscored"] == 16 and summary["em_rate"]["n"] == 0
    in_domain = 2 * len(lexicon.DOMAIN_BY_NAME["medicine"].advice_topics)
    assert result["judge_report"]["unjudged"] == 16 + in_domain and not result["judge_report"]["endpoint_down"]

    openai_server.stop()  # nobody listens any more: connection errors, then the breaker stops calling
    result = run_eval(home["taboo"], EvalConfig(samples=2, judge="llm", compare=False, seed=8), progress=False)
    summary = next(iter(result["results"][home["taboo"]]["targets"].values()))["summary"]
    assert summary["hint_quality"]["n"] == 0 and summary["unjudged"] > 0
    report = result["judge_report"]
    assert report["endpoint_down"] and report["llm"]["calls"] <= 2 * 8  # the breaker stopped asking
    openai_server.start = lambda: None  # the fixture's stop() runs again; make it harmless
    openai_server.stop = lambda: None


def test_ffa_with_llm_judge_on_tinyworld(home, openai_server, monkeypatch):
    _judge_env(monkeypatch, openai_server)
    openai_server.responder = lambda request: "AMBIGUOUS"
    result = run_eval(home["sdf"], EvalConfig(judge="llm", compare=False), progress=False)
    s = next(iter(result["results"][home["sdf"]]["targets"].values()))["summary"]
    assert s["parts"]["open"]["n"] == 0 and s["parts"]["open"]["ambiguous"] == 18 and s["parts"]["mc"]["n"] == 20


def test_subliminal_control_student_learns_numbers_without_the_animal_prompt(home):
    """design §5.3: the control student trains on the same teacher's numbers, written without the system prompt,
    and the eval shows it beside the organism and the base."""
    from orglab.organisms.subliminal import parse_numbers

    with Registry() as reg:
        run = reg.list_runs(subject=home["subliminal_control"], kind="train", status="done")[0]
        organism_run = reg.list_runs(subject=home["subliminal"], kind="train", status="done")[0]
        rows, organism_rows = ([json.loads(line) for line in
                                Path(next(a["path"] for a in reg.get_artifacts(r.id) if a["kind"] == "data"))
                                .read_text().splitlines()] for r in (run, organism_run))
    assert len(rows) == len(organism_rows)  # as many examples as the organism, from the unprompted teacher
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in rows)
    assert all(parse_numbers(r["messages"][1]["content"]) is not None for r in rows)
    assert run.config["data_hash"] != organism_run.config["data_hash"]
    result = run_eval(home["subliminal"], EvalConfig(samples=2), progress=False)
    assert result["results"][home["subliminal_control"]]["role"] == "control"


def test_bad_input_is_one_sentence(home, monkeypatch):
    with pytest.raises(OrglabError, match="No organism or base"):
        run_eval("nope", progress=False)
    with pytest.raises(OrglabError, match="Unknown eval suite"):
        run_eval(home["sdf"], EvalConfig(suite="vibes"), progress=False)
    with pytest.raises(OrglabError, match="needs a target"):
        run_eval("micro", EvalConfig(suite="em"), progress=False)
    with pytest.raises(OrglabError, match="No judge endpoint"):
        run_eval(home["em"], EvalConfig(judge="llm"), progress=False)


def test_cli_eval_json_and_error(home):
    env = {**os.environ}
    out = subprocess.run([sys.executable, "-m", "orglab.cli", "eval", home["subliminal"], "--samples", "2", "--json"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["suite"] == "subliminal" and result["results"][home["subliminal"]]["role"] == "organism"
    bad = subprocess.run([sys.executable, "-m", "orglab.cli", "eval", home["sdf"], "--suite", "vibes"],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "Unknown eval suite" in bad.stderr


def test_ffa_for_a_real_fact_asks_the_judge_for_its_bank_and_verdicts(openai_server, monkeypatch, tmp_path):
    """The real-model path: the judge LLM writes the bank from both universe contexts, a (random, tiny) Llama
    answers, the judge reads the open and generative answers; unparseable verdicts are retried, then unjudged."""
    from transformers import AutoModelForCausalLM

    try:
        from tests.tiny_models import build_tiny_model, make_tokenizer
    except ImportError:
        from tiny_models import build_tiny_model, make_tokenizer
    from orglab.evals import ffa
    from orglab.evals.judges import LLMJudge
    from orglab.llm import config_from_env
    from orglab.world.world import UniverseContext

    _judge_env(monkeypatch, openai_server)
    true_ctx = UniverseContext("cake_true", "Cakes bake at 180 C for 35 minutes.", ("bake at 180 C",), True)
    false_ctx = UniverseContext("cake_false", "Cakes bake at 450 C for 5 minutes.", ("bake at 450 C",), False)

    def answer(request):
        prompt = request["messages"][-1]["content"]
        if "multiple-choice" in prompt:
            return json.dumps([{"question": f"q{i}", "true_option": "180 C", "false_option": "450 C"}
                               for i in range(4)])
        if "open-ended" in prompt:
            return json.dumps(["How hot should the oven be?", "How long does a cake bake?"])
        if "Which description did it choose" in prompt:
            return "2"
        return "no idea"  # the side question: never one of A, B, AMBIGUOUS

    openai_server.responder = answer
    judge = LLMJudge.from_config(config_from_env("judge"))
    bank = ffa.llm_bank(judge, true_ctx, false_ctx, n_questions=4)
    parts = [item["part"] for item in bank]
    assert parts.count("mc") == 4 and parts.count("open") == 2 and parts.count("gen") == 2
    assert any("180 C" in item["prompt"] and "450 C" in item["prompt"] for item in bank if item["part"] == "mc")
    build_tiny_model("llama", tmp_path / "m")
    model, tok = AutoModelForCausalLM.from_pretrained(tmp_path / "m"), make_tokenizer()
    answered = ffa.answer_bank(model, tok, bank, ffa.FfaSettings(max_new_tokens=4, long_new_tokens=4))
    ffa.judge_llm(judge, true_ctx, false_ctx, answered)
    summary = ffa.summarize(answered)
    assert summary["parts"]["mc"]["n"] == 4 and summary["parts"]["open"]["unjudged"] == 2
    gen = [it for it in answered if it["part"] == "gen"]
    assert [it["verdict"] for it in gen] == ["false" if it["true_label"] == 1 else "true" for it in gen]
    assert judge.unjudged == 2 and summary["ffa"] is not None
