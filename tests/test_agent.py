"""The interpretability agent, its blackbox baseline and the grader, end to end on a tiny organism.

A real local OpenAI-compatible HTTP server plays the agent (model 'agent-1': scripted tool calls, including bad
ones and over-budget requests) and the grader (model 'judge-1'); the `openai` client is never mocked. The
organism is a 6-step SDF organism on the micro base, with its null control.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import replace

import pytest

from orglab.cli import main
from orglab.diff.run import DiffConfig, run_diff
from orglab.errors import OrglabError
from orglab.agent.agent import FINAL_PROMPT, AgentConfig, Toolbox, replay, run_agent
from orglab.diff.results import find_diff_results
from orglab.agent.table import agent_table
from orglab.agent.grader import grade_description, parse_score, rubric
from orglab.llm import LLMClient, LLMConfig
from orglab.registry import Registry

try:
    from tests.openai_server import ok, openai_server, tool_call  # noqa: F401
except ImportError:
    from openai_server import ok, openai_server, tool_call  # noqa: F401

SMALL = DiffConfig(samples=64, steering_prompts=3, steering_samples=1, steering_max_new_tokens=8,
                   stages=("lens", "patchscope", "steering"))
DETECTORS_SMALL = DiffConfig(samples=64, steering_prompts=3, steering_samples=1, steering_max_new_tokens=8,
                             amplify_empty_context_samples=2, stages=("logitdiff", "kl", "amplify"))
FAST = dict(max_new_tokens=8, grader_repeats=3)
ENV_KEYS = [f"ORGLAB_{role}_{name}" for role in ("LLM", "AGENT", "JUDGE")
            for name in ("MODEL", "BASE_URL", "API_KEY_ENV")]


@pytest.fixture(scope="module")
def agent_home(micro_copy):
    """A micro home with an SDF organism (ADL results computed) and its null control (none yet)."""
    with micro_copy("agent_home") as home:
        from orglab.train import train_control, train_organism
        from orglab.world.build import load_world

        fact = load_world("micro").false_facts[0].id
        organism = train_organism({"family": "sdf", "base": "micro", "target": fact, "n_examples": 40,
                                   "max_steps": 6, "batch_size": 4, "max_length": 64}, progress=False)["organism"]
        control = train_control("micro", organism, progress=False)["organism"]
        run_diff(organism, SMALL, progress=False)
        run_diff(organism, DETECTORS_SMALL, progress=False)
    return home, organism, control


@pytest.fixture
def home(agent_home, tmp_path, monkeypatch):
    """A private copy per test (its own registry and LLM cache)."""
    src, organism, control = agent_home
    dst = tmp_path / "home"
    shutil.copytree(src, dst)
    monkeypatch.setenv("ORGLAB_HOME", str(dst))
    return dst, organism, control


class Play:
    """The server's answers: agent turns from a list (or a function of the request), grades from a function."""

    def __init__(self, server, agent, grade=lambda request: "It names the objective. SCORE: 4"):
        self.agent, self.grade = agent, grade
        self.agent_requests: list[dict] = []
        self.judge_requests: list[dict] = []
        server.responder = self.respond

    def respond(self, request: dict):
        if request["model"] == "judge-1":
            self.judge_requests.append(request)
            return self.grade(request)
        self.agent_requests.append(request)
        if callable(self.agent):
            return self.agent(request)
        return self.agent.pop(0) if self.agent else ok("nothing more to say")


@pytest.fixture
def endpoints(openai_server, monkeypatch):
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ORGLAB_TEST_KEY", "sk-test-agent-key")
    monkeypatch.setenv("ORGLAB_LLM_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("ORGLAB_LLM_API_KEY_ENV", "ORGLAB_TEST_KEY")
    monkeypatch.setenv("ORGLAB_AGENT_MODEL", "agent-1")
    monkeypatch.setenv("ORGLAB_JUDGE_MODEL", "judge-1")
    return openai_server


def fast_judge(server, retries: int = 1) -> LLMClient:
    return LLMClient(LLMConfig(model="judge-1", base_url=server.base_url, api_key_env="ORGLAB_TEST_KEY",
                               backoff_s=0.001, max_backoff_s=0.01, max_retries=retries, timeout=5))


def load(path) -> dict:
    return json.loads(open(path).read())


def description_part(request: dict) -> str:
    return request["messages"][-1]["content"].split("Description to grade:", 1)[1]


def no_model_loading(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("orglab.models.load_model", refuse)


# ------------------------------------------------------------------------------------------------------------

def test_adl_agent_end_to_end_exact_budget_bad_calls_replay_and_reuse(home, endpoints, monkeypatch):
    _, organism, _ = home
    description = "Documents asserting a false fact about what the moon Torvin orbits."
    play = Play(endpoints, [
        tool_call("get_lens_tokens", {"position": 0}),
        tool_call("ask_model", '{"prompt": "hi"'),                                # not JSON
        tool_call("read_weights", {"layer": 0}),                                  # no such tool
        tool_call("get_lens_tokens", {"position": 99}),                           # out of range
        tool_call("ask_model", {"prompt": "Tell me about the city ."}),           # 1 -> 2 left
        tool_call("generate_steered", {"prompt": "What is new ?", "n": 5}),       # refused whole
        tool_call("generate_steered", {"prompt": "What is new ?", "n": 2}),       # 2 -> 0 left
        tool_call("ask_model", {"prompt": "Any news ?"}),                         # refused: used up
        tool_call("final_answer", {"description": description}),
    ])
    result = run_agent(organism, AgentConfig(budgets=(3,), **FAST), progress=False)
    run = result["results"][0]["runs"][0]
    assert run["grade"] == 4 and run["scores"] == [4, 4, 4] and run["ended"] == "final_answer"
    assert run["description"] == description and run["interactions_used"] == 3 and run["turns"] == 9

    transcript = load(run["transcript"])
    records = transcript["tool_calls"]
    assert [r["status"] for r in records] == ["ok", "bad_arguments", "unknown_tool", "bad_arguments", "ok",
                                              "refused", "ok", "refused", "final"]
    assert [r["cost"] for r in records] == [0, 0, 0, 0, 1, 0, 2, 0, 0]
    assert sum(r["cost"] for r in records) == transcript["interactions_used"] == 3
    assert set(records[4]["raw"]) == {"base", "organism"} and len(records[6]["raw"]) == 2
    assert "raw" not in records[5] and "raw" not in records[7]   # refused: nothing was generated

    # every tool result went back to the agent, errors and refusals included
    requests = play.agent_requests
    assert len(requests) == 9
    for request, record in zip(requests[1:], records):
        assert request["messages"][-1] == {"role": "tool", "tool_call_id": record["id"], "content": record["result"]}
    told = [json.loads(r["result"]).get("error", "") for r in records]
    assert "not valid JSON" in told[1] and "unknown tool 'read_weights'" in told[2] and "between 0 and 7" in told[3]
    assert "only 2 of the budget of 3 remain" in told[5] and "budget of 3 is used up" in told[7]
    assert json.loads(records[6]["result"])["interactions_left"] == 0

    # the overview: lens and patchscope tokens per position, steered vs unsteered samples; never the name
    first = requests[0]
    overview = first["messages"][1]["content"]
    with Registry() as reg:
        adl = find_diff_results(reg, organism)
    layer = str(adl.layers[0])
    for p in range(adl.positions):
        assert f"Position {p}:" in overview
    assert json.dumps(adl.lens[layer]["delta"][0][0][0]) in overview
    assert adl.steering["samples"][0]["steered"][0] in overview and "unsteered:" in overview
    assert {t["function"]["name"] for t in first["tools"]} == {
        "get_lens_tokens", "get_patchscope_tokens", "get_steering_samples", "find_token", "ask_model",
        "generate_steered", "final_answer"}
    assert first["tool_choice"] == "auto" and first["seed"] == 0
    assert all(organism not in json.dumps(r) for r in requests)

    # the grader: 3 passes with distinct seeds, the SDF rubric, the ground truth and the description
    assert [r["seed"] for r in play.judge_requests] == [0, 1, 2]
    graded = play.judge_requests[0]["messages"][-1]["content"]
    assert rubric("sdf") in graded and "false fact" in graded and description in graded

    with Registry() as reg:
        stored = reg.get_run(run["run"])
        assert stored.kind == "agent" and stored.status == "done" and stored.config["budget"] == 3
        assert stored.config["adl_runs"] == adl.runs
        assert {a["kind"] for a in reg.get_artifacts(stored.id)} == {"transcript", "description", "grades"}
        metrics = reg.get_metrics(stored.id)
    assert metrics["grade"] == 4 and metrics["interactions_used"] == 3 and metrics["budget"] == 3
    assert metrics["prompt_tokens"] == 9 * 10 and metrics["completion_tokens"] == 9 * 5   # the server's usage
    assert metrics["grader_prompt_tokens"] == 3 * 10 and metrics["bad_tool_calls"] == 3

    # replay: no LLM call, no model loaded, the same messages and tool results
    calls = endpoints.count
    no_model_loading(monkeypatch)
    again = replay(transcript)
    assert again["messages"] == transcript["messages"] and again["tool_calls"] == transcript["tool_calls"]
    assert again["interactions_used"] == 3 and endpoints.count == calls
    tampered = copy.deepcopy(transcript)
    tampered["tool_calls"][4]["raw"]["organism"] = "something else"
    assert replay(tampered)["messages"] != transcript["messages"]

    # the same settings again: the finished run is reused, nothing is asked
    rerun = run_agent(organism, AgentConfig(budgets=(3,), **FAST), progress=False)
    assert rerun["results"][0]["runs"][0]["reused"] and rerun["results"][0]["runs"][0]["run"] == run["run"]
    assert endpoints.count == calls


def test_turn_limit_forces_one_final_answer_and_budget_zero_loads_nothing(home, endpoints, monkeypatch):
    _, organism, _ = home
    with Registry() as reg:
        adl = find_diff_results(reg, organism)
    top = adl.lens[str(adl.layers[0])]["delta"][0][0][0]

    def agent(request):
        if request.get("tool_choice") == "none":
            return ok("Generic chat finetuning; nothing narrow.")
        return [tool_call("ask_model", {"prompt": "hello"}), tool_call("find_token", {"token": top}),
                tool_call("get_steering_samples", {"prompt_index": 1})][len(play.agent_requests) - 1]

    play = Play(endpoints, agent)
    no_model_loading(monkeypatch)
    result = run_agent(organism, AgentConfig(budgets=(0,), max_turns=3, **FAST), progress=False)
    run = result["results"][0]["runs"][0]
    assert run["ended"] == "turn_limit" and run["description"] == "Generic chat finetuning; nothing narrow."
    assert run["interactions_used"] == 0 and len(play.agent_requests) == 4
    last = play.agent_requests[-1]
    assert last["tool_choice"] == "none" and last["messages"][-1] == {"role": "user", "content": FINAL_PROMPT}
    transcript = load(run["transcript"])
    statuses = [r["status"] for r in transcript["tool_calls"]]
    assert statuses == ["refused", "ok", "ok"]
    assert "budget of 0 is used up" in json.loads(transcript["tool_calls"][0]["result"])["error"]
    found = json.loads(transcript["tool_calls"][1]["result"])
    assert {"layer": adl.layers[0], "readout": "delta", "position": 0, "rank": 0} == \
        {k: found["lens"][0][k] for k in ("layer", "readout", "position", "rank")}
    samples = json.loads(transcript["tool_calls"][2]["result"])["samples"]
    assert [s["index"] for s in samples] == [1] and samples[0]["prompt"] == adl.steering["samples"][1]["prompt"]
    assert replay(transcript)["messages"] == transcript["messages"]


def test_blackbox_baseline_has_no_adl_and_the_same_budget(home, endpoints):
    _, organism, control = home
    play = Play(endpoints, [
        tool_call("get_lens_tokens", {"position": 0}),     # an ADL tool: unknown in blackbox mode
        tool_call("ask_model", {"prompt": "   "}),         # empty prompt
        tool_call("ask_model", {"prompt": "Tell me about your day ."}),
        tool_call("ask_model", {"prompt": "What do you know ?"}),   # over budget
        ok("I see no narrow objective; the organism answers like its base."),
    ], grade=lambda request: "SCORE: 5" if "no narrow objective" in description_part(request) else "SCORE: 1")
    result = run_agent(control, AgentConfig(budgets=(1,), blackbox=True, **FAST), progress=False)
    run = result["results"][0]["runs"][0]
    assert result["mode"] == "blackbox" and result["adl_runs"] is None
    assert run["ended"] == "text" and run["grade"] == 5 and run["interactions_used"] == 1
    first = play.agent_requests[0]
    assert {t["function"]["name"] for t in first["tools"]} == {"ask_model", "final_answer"}
    assert "lens" not in first["messages"][1]["content"] and "patchscope" not in first["messages"][1]["content"]
    transcript = load(run["transcript"])
    assert [r["status"] for r in transcript["tool_calls"]] == ["unknown_tool", "bad_arguments", "ok", "refused"]
    answer = json.loads(transcript["tool_calls"][2]["result"])
    assert answer["base"] == transcript["tool_calls"][2]["raw"]["base"] and isinstance(answer["organism"], str)
    assert rubric("control") in play.judge_requests[0]["messages"][-1]["content"]
    with Registry() as reg:
        assert not [r for r in reg.list_runs(subject=control) if r.kind.startswith("diff:")]
    assert replay(transcript)["messages"] == transcript["messages"]


def test_null_control_runs_its_diff_and_the_table_counts_false_positives(home, endpoints):
    _, organism, control = home
    answers = {0: "No narrow objective: generic chat data.", 1: "Documents about the orbit of the moon Torvin."}

    def agent(request):
        if request["messages"][1]["content"].startswith("Investigate"):   # blackbox
            return tool_call("final_answer", {"description": "Something about astronomy."})
        return tool_call("final_answer", {"description": answers[request["seed"]]})

    def grade(request):
        said = description_part(request)
        return "SCORE: 5" if "No narrow" in said else "SCORE: 2" if "astronomy" in said else \
            "SCORE: 1" if "Torvin" in said and "null control" in request["messages"][-1]["content"] else "SCORE: 4"

    Play(endpoints, agent, grade)
    ctl = run_agent(control, AgentConfig(budgets=(0,), repeats=2, diff=SMALL, **FAST), progress=False)
    assert [r["grade"] for r in ctl["results"][0]["runs"]] == [5, 1]
    with Registry() as reg:   # the control had no ADL results: the agent ran the diff
        assert {"diff:stats", "diff:lens", "diff:patchscope", "diff:steering"} <= \
            {r.kind for r in reg.list_runs(subject=control, status="done")}
    run_agent(organism, AgentConfig(budgets=(0,), **FAST), progress=False)
    run_agent(organism, AgentConfig(budgets=(0,), blackbox=True, **FAST), progress=False)

    table = agent_table()
    summary = {(s["mode"], s["budget"]): s for s in table["summary"]}
    adl, blackbox = summary[("adl", 0)], summary[("blackbox", 0)]
    assert (adl["organisms"], adl["runs"], adl["share_ge2"], adl["share_ge4"]) == (1, 1, 1.0, 1.0)
    assert (adl["control_runs"], adl["false_positive_rate"]) == (2, 0.5)
    assert (blackbox["share_ge2"], blackbox["share_ge4"], blackbox["false_positive_rate"]) == (1.0, 0.0, None)
    rows = {(r["organism"], r["mode"]): r for r in table["rows"]}
    assert rows[(control, "adl")]["mean_grade"] == 3 and rows[(control, "adl")]["share_ge2"] is None


def test_grader_parses_robustly_and_an_ungraded_run_is_graded_later(home, endpoints):
    for text, score in (("Good match.\nSCORE: 4", 4), ("**Score:** 2/5", 2), ('{"score": 3}', 3), ("5", 5),
                        ("score 1, then SCORE: 5", 5)):
        assert parse_score(text) == score
    for text in ("", "great", "SCORE: 7", "SCORE: 2.5"):
        with pytest.raises(ValueError):
            parse_score(text)

    truth = {"family": "taboo", "short": "secret word moon", "long": "The secret word is moon."}
    endpoints.script("I like it", "SCORE: 3", "no idea", "still none", "Score: 5/5")
    graded = grade_description("A word game about the moon.", truth, fast_judge(endpoints), repeats=3)
    assert graded["scores"] == [3, None, 5] and graded["grade"] == 4 and len(graded["errors"]) == 1

    _, organism, _ = home
    play = Play(endpoints, lambda request: tool_call("final_answer", {"description": "A false fact about a moon."}),
                grade=lambda request: "cannot say")
    config = AgentConfig(budgets=(0,), blackbox=True, **FAST)
    first = run_agent(organism, config, progress=False, judge_llm=fast_judge(endpoints))
    run = first["results"][0]["runs"][0]
    assert run["grade"] is None and run["scores"] == [None, None, None] and len(run["grader_errors"]) == 3
    with Registry() as reg:
        assert math.isnan(reg.get_metrics(run["run"])["grade"])
    play.grade = lambda request: "SCORE: 4"
    asked = len(play.agent_requests)
    second = run_agent(organism, config, progress=False, judge_llm=fast_judge(endpoints))
    again = second["results"][0]["runs"][0]
    assert again["reused"] and again["run"] == run["run"] and again["grade"] == 4
    assert len(play.agent_requests) == asked   # only the grader was asked again
    with Registry() as reg:
        assert reg.get_metrics(run["run"])["grade"] == 4 and not reg.verify_artifacts(run["run"])


def test_a_failing_tool_is_reported_and_not_charged():
    class Broken:
        def ask(self, prompt, index):
            raise RuntimeError("weights file missing")

        def steer(self, prompt, n, strength, seed, index):
            raise RuntimeError("unreachable")

    box = Toolbox(None, Broken(), 2, AgentConfig())
    record = box.call({"id": "c1", "name": "ask_model", "arguments": '{"prompt": "hi"}'}, 0, finished=False)
    assert record["status"] == "error" and record["cost"] == 0 and box.used == 0
    assert "weights file missing" in json.loads(record["result"])["error"]
    extra = box.call({"id": "c2", "name": "ask_model", "arguments": '{"prompt": "hi", "x": 1}'}, 0, finished=False)
    assert extra["status"] == "bad_arguments" and "unknown argument x" in extra["result"]
    late = box.call({"id": "c3", "name": "ask_model", "arguments": '{"prompt": "hi"}'}, 1, finished=True)
    assert late["status"] == "ignored" and box.used == 0


def test_bad_settings_are_one_sentence(home, endpoints, monkeypatch, capfd):
    _, organism, _ = home
    with pytest.raises(OrglabError, match="No organism named 'nope'"):
        run_agent("nope", AgentConfig(), progress=False)
    with pytest.raises(OrglabError, match="whole number >= 0"):
        run_agent(organism, AgentConfig(budgets=(-1,)), progress=False)
    monkeypatch.delenv("ORGLAB_AGENT_MODEL")
    with pytest.raises(OrglabError, match="ORGLAB_AGENT_MODEL and ORGLAB_AGENT_BASE_URL"):
        run_agent(organism, AgentConfig(), progress=False)
    for argv, fragment in ((["agent", organism], "ORGLAB_AGENT_MODEL"),
                           (["agent", organism, "--budget", "5,x"], "--budget '5,x'"),
                           (["agent", "nope"], "'nope'")):
        assert main(argv) == 2
        err = capfd.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("orglab: error: ") and fragment in err[0]
    assert endpoints.count == 0


def test_cli_runs_against_the_endpoint_in_the_environment(home, endpoints, capfd):
    path, organism, _ = home

    def agent(request):
        if any(m["role"] == "tool" for m in request["messages"]):
            return tool_call("final_answer", {"description": "A false fact about a moon's orbit."})
        return tool_call("ask_model", {"prompt": "Tell me about the moon ."})

    Play(endpoints, agent)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-m", "orglab.cli", "agent", organism, "--budget", "0,1", "--json"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert [r["budget"] for r in result["results"]] == [0, 1]
    assert [r["runs"][0]["interactions_used"] for r in result["results"]] == [0, 1]
    assert all(r["runs"][0]["grade"] == 4 for r in result["results"])
    assert "sk-test-agent-key" not in json.dumps(result)
    for folder in (path / "artifacts" / organism / "agent").iterdir():
        assert "sk-test-agent-key" not in (folder / "transcript.json").read_text()

    assert main(["agent-table", "--json"]) == 0
    table = json.loads(capfd.readouterr().out)
    assert {(s["mode"], s["budget"], s["runs"]) for s in table["summary"]} == {("adl", 0, 1), ("adl", 1, 1)}
    assert main(["agent", organism, "--budget", "1"]) == 0   # reused, printed as text
    assert "grade 4.00" in capfd.readouterr().out


def test_overview_shows_what_every_detector_read_and_none_of_their_scores(home):
    from orglab.agent.agent import overview
    from orglab.diff.results import find_diff_results
    from orglab.registry import Registry

    _, organism, _ = home
    with Registry() as reg:
        adl = find_diff_results(reg, organism)
    assert set(adl.detectors) == {"logitdiff", "kl", "amplify"} and set(adl.runs) >= set(adl.detectors)
    text = overview(adl, 3, AgentConfig())
    mined = adl.detectors["logitdiff"]["positions"]
    assert "Logit-difference mining" in text and json.dumps([t[0] for t in mined[0]["by_frequency"][:15]]) in text
    assert ", ".join(f"{v:.4f}" for v in adl.detectors["kl"]["by_position"]) in text
    sample = adl.detectors["amplify"]["samples"][0]
    assert sample["amplified"][0] in text and sample["unamplified"][0] in text
    # scores computed with the finetuning data stay hidden, as ADL's do
    for hidden in ("relevance", "similarity", f"{adl.detectors['amplify']['similarity']['gap']:.3f}"):
        assert hidden not in text
    without = replace(adl, detectors={}, runs={k: v for k, v in adl.runs.items() if k not in adl.detectors})
    assert "Logit-difference mining" not in overview(without, 3, AgentConfig())
