"""`orglab diff --judge llm`: the LLM-chosen patchscope scale, LLM-judged steering coherence and LLM token
relevance, against the local OpenAI-compatible server (the real `openai` client over HTTP), on an SDF organism of
the micro base; the pure parsers; and the one-sentence errors of a missing or dead judge endpoint."""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys
from dataclasses import replace

import pytest

from orglab.diff.judges import (SCALE_TOP, parse_coherence, parse_relevant, parse_scale, relevance_messages,
                                scale_messages)
from orglab.diff.run import DiffConfig, relevance_truth, run_diff
from orglab.errors import OrglabError
from orglab.llm import ChatReply
from orglab.registry import Registry

try:
    from tests.openai_server import last_user_message, ok, openai_server, with_logprobs  # noqa: F401
except ImportError:
    from openai_server import last_user_message, ok, openai_server, with_logprobs  # noqa: F401

# No causal stage: nothing here depends on it, and it is the slowest.
SMALL = DiffConfig(samples=300, steering_prompts=4, steering_samples=1, steering_max_new_tokens=12,
                   stages=("stats", "lens", "patchscope", "relevance", "steering"))
GRID = (0.5, 1.0, 2.0, 4.0, 8.0)


# ------------------------------------------------------------------------------------------------ pure parsers

def test_parse_scale_accepts_grid_scales_only():
    assert parse_scale('{"best_scale": 8.0}', GRID) == 8.0
    assert parse_scale('I pick this one: ```json\n{"best_scale": 4}\n```', GRID) == 4.0
    assert parse_scale('{"best_scale": "0.5"}', GRID) == 0.5
    assert parse_scale("2", GRID) == 2.0
    for bad in ('{"best_scale": 3.0}', '{"scale": 4}', '{"best_scale": true}', '{"best_scale": "big"}',
                '{"best_scale": [4]}', "no json here", "[4, 8]"):
        with pytest.raises(ValueError):
            parse_scale(bad, GRID)


def test_parse_relevant_indices_or_tokens_validated():
    tokens = ["crater", " orbit", "the", "Comet"]
    assert parse_relevant('{"relevant": [0, 1]}', tokens) == [0, 1]
    assert parse_relevant('{"relevant": []}', tokens) == []
    assert parse_relevant('[3, 0, 3]', tokens) == [0, 3]
    assert parse_relevant('{"relevant": ["crater", "orbit", "comet"]}', tokens) == [0, 1, 3]
    assert parse_relevant('{"relevant": [2.0]}', tokens) == [2]
    for bad in ('{"relevant": [4]}', '{"relevant": [-1]}', '{"relevant": ["moon"]}', '{"relevant": [true]}',
                '{"relevant": "0, 1"}', '{"tokens": [0]}', '{"relevant": [{"i": 0}]}', "none of them"):
        with pytest.raises(ValueError):
            parse_relevant(bad, tokens)


def test_parse_coherence_from_logprobs_then_text():
    top = {"90": math.log(0.6), "70": math.log(0.4)}
    assert parse_coherence(ChatReply(content="90", top_logprobs=[top])) == pytest.approx(82.0)
    assert parse_coherence(ChatReply(content="The answer scores 40.")) == 40.0
    balked = ChatReply(content="I cannot rate this", top_logprobs=[{"I": -0.01, "Sorry": -5.0}])
    assert parse_coherence(balked) is None


def test_prompts_show_only_what_each_judge_may_see():
    grader = scale_messages([(1.0, ["crater", "orbit"]), (2.0, [])])[0]["content"]
    assert '"crater"' in grader and "scale 2: (no tokens)" in grader and "best_scale" in grader
    judge = relevance_messages("Finetuned on moon documents.", ["a", "b"])[0]["content"]
    assert "Finetuned on moon documents." in judge and '1: "b"' in judge


def test_judge_value_is_validated():
    with pytest.raises(OrglabError, match="Unknown judge 'gpt'; use --judge offline or --judge llm"):
        DiffConfig(judge="gpt").validate()
    with pytest.raises(OrglabError, match="coherence threshold"):
        DiffConfig(coherence_threshold=150).validate()


# ------------------------------------------------------------------------------------------------ on the micro base

@pytest.fixture(scope="module")
def sdf_home(micro_copy):
    with micro_copy("diff_judges_home") as home:
        from orglab.train import train_organism

        world = next(iter(home.glob("artifacts/micro/world/*/world.json")))
        fact = json.loads(world.read_text())["false_facts"][0]["id"]
        organism = train_organism({"family": "sdf", "base": "micro", "target": fact, "n_examples": 120,
                                   "epochs": 1}, progress=False)["organism"]
    return home, organism


def _judge_env(monkeypatch, server, model="judge-1"):
    for var in [v for v in os.environ if v.startswith(("ORGLAB_JUDGE_", "ORGLAB_LLM_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("ORGLAB_JUDGE_MODEL", model)
    monkeypatch.setenv("ORGLAB_JUDGE_BASE_URL", server.base_url)
    monkeypatch.setenv("ORGLAB_JUDGE_API_KEY_ENV", "none")
    monkeypatch.setenv("ORGLAB_JUDGE_MAX_RETRIES", "0")
    monkeypatch.setenv("ORGLAB_JUDGE_TIMEOUT", "10")


def _listed(prompt: str) -> int:
    """How many numbered tokens a relevance prompt shows."""
    listing = prompt.split("most prominent first:\n", 1)[1].split("\n\n", 1)[0]
    return len(re.findall(r"^\d+: ", listing, flags=re.MULTILINE))


def _responder(coherence: float):
    """Scale 4 for the grader, `coherence` for every completion, every third token relevant."""

    def answer(request):
        prompt = last_user_message(request)
        if "best_scale" in prompt:
            return ok('{"best_scale": 4.0}')
        if "how coherent is the answer" in prompt:
            return with_logprobs({f"{coherence:g}": math.log(0.9), "0": math.log(0.1)})
        if '"relevant"' in prompt:
            return ok(json.dumps({"relevant": [i for i in range(_listed(prompt)) if i % 3 == 0]}))
        return ok("OK")  # the preflight

    return answer


def _expected_share(n_tokens: int, k: int) -> float:
    n = min(n_tokens, k)
    return len(range(0, n, 3)) / n if n else 0.0


def test_llm_judge_end_to_end_then_cached(sdf_home, openai_server, monkeypatch):
    home, organism = sdf_home
    monkeypatch.setenv("ORGLAB_HOME", str(home))
    offline = run_diff(organism, SMALL, progress=False)
    assert offline["stages"]["patchscope"]["scale_rule"] == "label-free prompt agreement"
    assert offline["stages"]["steering"]["coherence_judge"].startswith("base-model loss and distinct-token share")
    assert all("distinct_share" in step for step in offline["stages"]["steering"]["coherence"])
    assert "token_relevance_llm" not in offline["summary"]

    _judge_env(monkeypatch, openai_server)
    openai_server.responder = _responder(coherence=90)
    result = run_diff(organism, replace(SMALL, judge="llm"), progress=False)
    stages, summary = result["stages"], result["summary"]
    first = openai_server.count
    assert first > 1

    # Offline stages are shared; judged stages are cached apart, and offline configs carry no judge key.
    for name in ("stats", "lens"):
        assert stages[name]["config_hash"] == offline["stages"][name]["config_hash"] and stages[name]["reused"]
    for name in ("patchscope", "relevance", "steering"):
        assert stages[name]["config_hash"] != offline["stages"][name]["config_hash"]
    with Registry() as reg:
        for name in ("patchscope", "relevance", "steering"):
            assert "judge" not in reg.get_run(offline["stages"][name]["run"]).config
            assert reg.get_run(stages[name]["run"]).config["judge"] == {
                "judge": "llm", "model": "judge-1", "base_url": openai_server.base_url,
                "prompts": reg.get_run(stages[name]["run"]).config["judge"]["prompts"]}

    # Patchscope: the grader's scale wherever there were tokens to grade; it never saw the description.
    layer = str(result["layers"][0])
    positions = stages["patchscope"]["layers"][layer]
    assert any(p["graded"] for p in positions)
    assert all(p["scale"] == 4.0 for p in positions if p["graded"])
    assert "judge-1" in stages["patchscope"]["scale_rule"]
    description = stages["relevance"]["llm"]["description"]
    grader_prompts = [last_user_message(r) for r in openai_server.requests if "best_scale" in last_user_message(r)]
    assert grader_prompts and all(description not in p and "prominent" not in p for p in grader_prompts)
    assert all(len(json.loads(line.split(": ", 1)[1])) <= SCALE_TOP
               for p in grader_prompts for line in p.splitlines() if line.startswith("scale ") and "[" in line)

    # Steering: every step judged coherent (mean 0.9 * 90 + 0.1 * 0 = 81 >= 50), so the search runs to the top.
    steering = stages["steering"]
    assert all(ok_ for _, ok_ in steering["search"]) and steering["alpha"] == pytest.approx(8.0 * (1 - 1 / 64))
    assert [c["mean_score"] for c in steering["coherence"]] == pytest.approx([81.0] * len(steering["search"]))
    assert "judge-1" in steering["coherence_judge"]

    # Relevance: the judge's verdicts (every third token) as shares of the top k, max over positions.
    k, P = SMALL.relevance_top, SMALL.positions
    assert summary["token_relevance_llm"] == pytest.approx(_expected_share(k, k))
    ps_shares = [_expected_share(len(p["tokens"]), k) for p in positions[:P]]
    assert summary["token_relevance_llm_patchscope"] == pytest.approx(max(ps_shares))
    assert stages["relevance"]["llm"]["described_as"] == organism
    assert summary["token_relevance"] == offline["summary"]["token_relevance"]  # data-grounded, unchanged

    # A re-run is answered by the registry: no request at all, not even the preflight.
    again = run_diff(organism, replace(SMALL, judge="llm"), progress=False)
    assert openai_server.count == first
    assert all(s["reused"] for s in again["stages"].values())
    assert again["summary"] == pytest.approx(summary)

    # The agent reads the results of the judge it is configured with (offline unless told), not just the newest.
    from orglab.diff.results import find_diff_results

    with Registry() as reg:
        for judge, expected in (("offline", offline), ("llm", result)):
            adl = find_diff_results(reg, organism, judge)
            assert {s: adl.runs[s] for s in ("stats", "patchscope", "steering")} == \
                {s: expected["stages"][s]["config_hash"] for s in ("stats", "patchscope", "steering")}

    # A judge that finds every steered output incoherent (mean 0.9 * 10 = 9 < 50) keeps alpha at 0.
    _judge_env(monkeypatch, openai_server, model="judge-harsh")
    openai_server.responder = _responder(coherence=10)
    harsh = run_diff(organism, replace(SMALL, judge="llm", stages=("steering",)), progress=False)
    assert harsh["stages"]["steering"]["alpha"] == 0.0
    assert not any(ok_ for _, ok_ in harsh["stages"]["steering"]["search"])


def test_mid_run_judge_garbage_fails_the_stage(sdf_home, openai_server, monkeypatch):
    home, organism = sdf_home
    monkeypatch.setenv("ORGLAB_HOME", str(home))
    _judge_env(monkeypatch, openai_server, model="judge-garbage")

    def answer(request):
        prompt = last_user_message(request)
        return ok('{"best_scale": 3.0}') if "best_scale" in prompt else ok("OK")  # 3 is not in the grid

    openai_server.responder = answer
    with pytest.raises(OrglabError, match="gave no usable answer"):
        run_diff(organism, replace(SMALL, judge="llm", stages=("patchscope",)), progress=False)
    with Registry() as reg:
        runs = [r for r in reg.list_runs(subject=organism, kind="diff:patchscope")
                if (r.config.get("judge") or {}).get("model") == "judge-garbage"]
    assert [r.status for r in runs] == ["failed"]


def test_control_relevance_is_judged_against_the_organism_it_mirrors(sdf_home, monkeypatch):
    home, organism = sdf_home
    monkeypatch.setenv("ORGLAB_HOME", str(home))
    with Registry() as reg:
        own = relevance_truth(reg, reg.get_organism(organism))
        control = relevance_truth(reg, {"name": "ctl", "family": "control", "target": organism, "base": "micro"})
    assert own["described_as"] == organism and control == own


# ------------------------------------------------------------------------------------------------ errors

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_dead_judge_endpoint_is_one_sentence_and_registers_nothing(sdf_home, monkeypatch):
    home, organism = sdf_home
    monkeypatch.setenv("ORGLAB_HOME", str(home))
    with Registry() as reg:
        before = len(reg.list_runs(subject=organism))
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORGLAB_JUDGE_", "ORGLAB_LLM_"))}
    env.update(ORGLAB_HOME=str(home), ORGLAB_JUDGE_MODEL="judge-1", ORGLAB_JUDGE_BASE_URL=url,
               ORGLAB_JUDGE_API_KEY_ENV="none", ORGLAB_JUDGE_MAX_RETRIES="0")
    out = subprocess.run([sys.executable, "-m", "orglab.cli", "diff", organism, "--judge", "llm"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f"orglab: error: The judge endpoint at {url} did not answer")
    assert "--judge offline" in last
    with Registry() as reg:
        assert len(reg.list_runs(subject=organism)) == before


def test_cli_judge_llm_without_a_judge_is_one_sentence(sdf_home, monkeypatch, capsys):
    from orglab.cli import main

    home, organism = sdf_home
    monkeypatch.setenv("ORGLAB_HOME", str(home))
    for var in [v for v in os.environ if v.startswith(("ORGLAB_JUDGE_", "ORGLAB_LLM_"))]:
        monkeypatch.delenv(var)
    assert main(["diff", organism, "--judge", "llm"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "set ORGLAB_JUDGE_MODEL and ORGLAB_JUDGE_BASE_URL" in err[0]
    assert "--judge offline" in err[0]
