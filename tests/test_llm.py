"""The LLM client against a real local OpenAI-compatible HTTP server (the `openai` library is never mocked)."""

from __future__ import annotations

import json

import pytest

from orglab.errors import OrglabError
from orglab.llm import LLMClient, LLMConfig, extract_json

try:
    from tests.openai_server import malformed, openai_server, rate_limited, server_error  # noqa: F401
except ImportError:
    from openai_server import malformed, openai_server, rate_limited, server_error  # noqa: F401

SECRET = "sk-test-secret-key-123456"


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("ORGLAB_TEST_KEY", SECRET)
    return "ORGLAB_TEST_KEY"


def client(server, key, **kw) -> LLMClient:
    cfg = LLMConfig(model="judge-1", base_url=server.base_url, api_key_env=key, backoff_s=0.001,
                    max_backoff_s=0.01, timeout=5, **kw)
    return LLMClient(cfg)


def test_answer_sent_with_key_and_cached_on_rerun(openai_server, key, orglab_home):
    openai_server.responder = lambda req: "answer to " + req["messages"][-1]["content"]
    first = client(openai_server, key)
    assert first.complete([{"role": "user", "content": "hi"}]) == "answer to hi"
    assert openai_server.count == 1
    assert openai_server.requests[0]["temperature"] == 0.0
    assert openai_server.auth_headers[0] == f"Bearer {SECRET}"

    second = client(openai_server, key)  # a re-run: new client, same request
    assert second.complete([{"role": "user", "content": "hi"}]) == "answer to hi"
    assert openai_server.count == 1 and second.stats.cache_hits == 1 and second.stats.calls == 0
    # different parameters are a different request
    second.complete([{"role": "user", "content": "hi"}], temperature=0.7)
    assert openai_server.count == 2

    files = list((orglab_home / "llm_cache").rglob("*.json"))
    assert len(files) == 2
    for f in files:
        assert SECRET not in f.read_text()
        assert json.loads(f.read_text())["request"]["model"] == "judge-1"


def test_retries_after_500_and_429(openai_server, key):
    openai_server.script(server_error(), rate_limited(0.0), "fine")
    c = client(openai_server, key)
    assert c.complete([{"role": "user", "content": "x"}]) == "fine"
    assert openai_server.count == 3
    assert c.stats.retries == 2 and c.stats.calls == 3


def test_retries_on_malformed_and_rejected_answers(openai_server, key):
    openai_server.script(malformed(), "no json here", '```json\n{"score": 7}\n```')
    c = client(openai_server, key)
    assert c.complete_json([{"role": "user", "content": "score it"}]) == {"score": 7}
    assert openai_server.count == 3 and c.stats.rejected_answers == 1

    def parse(text: str) -> int:
        if not text.strip().isdigit():
            raise ValueError("not a number")
        return int(text)

    openai_server.script("about fifty", "50")
    assert c.complete([{"role": "user", "content": "n?"}], parse=parse) == 50


def test_gives_up_with_one_sentence(openai_server, key):
    openai_server.responder = lambda req: server_error()
    c = client(openai_server, key, max_retries=2)
    with pytest.raises(OrglabError, match="no usable answer after 3 attempts"):
        c.complete([{"role": "user", "content": "x"}])
    assert openai_server.count == 3


def test_missing_key_names_the_variable(openai_server, monkeypatch):
    monkeypatch.delenv("ORGLAB_NO_SUCH_KEY", raising=False)
    c = LLMClient(LLMConfig(model="m", base_url=openai_server.base_url, api_key_env="ORGLAB_NO_SUCH_KEY"))
    with pytest.raises(OrglabError, match="ORGLAB_NO_SUCH_KEY is not set"):
        c.complete([{"role": "user", "content": "x"}])
    assert openai_server.count == 0


def test_complete_many_keeps_order(openai_server, key):
    openai_server.responder = lambda req: req["messages"][-1]["content"].upper()
    c = client(openai_server, key)
    out = c.complete_many([[{"role": "user", "content": w}] for w in ("a", "b", "c", "d")], workers=3)
    assert out == ["A", "B", "C", "D"]


def test_extract_json_tolerates_surrounding_text():
    assert extract_json('Sure! Here it is: [1, 2] and more') == [1, 2]
    with pytest.raises(ValueError):
        extract_json("nothing")


def test_chat_returns_tool_calls_and_logprobs_and_caches_them(openai_server, key, orglab_home):
    try:
        from tests.openai_server import tool_call, with_logprobs
    except ImportError:
        from openai_server import tool_call, with_logprobs
    from orglab.llm import ChatReply

    openai_server.script(tool_call("ask_model", {"prompt": "hi"}), with_logprobs({"90": -0.1, "80": -2.5}))
    llm = client(openai_server, key)
    tools = [{"type": "function", "function": {"name": "ask_model", "parameters": {"type": "object"}}}]
    reply = llm.chat([{"role": "user", "content": "go"}], tools=tools)
    assert isinstance(reply, ChatReply) and reply.content is None
    assert reply.tool_calls[0]["name"] == "ask_model" and json.loads(reply.tool_calls[0]["arguments"]) == {"prompt": "hi"}
    assert reply.assistant_message()["tool_calls"][0]["function"]["name"] == "ask_model"
    judged = llm.chat([{"role": "user", "content": "score"}], logprobs=True, top_logprobs=2)
    assert judged.content == "90" and judged.top_logprobs == [{"90": -0.1, "80": -2.5}]
    assert judged.usage["total_tokens"] == 15
    # both answers come from the disk cache the second time
    again = client(openai_server, key)
    assert again.chat([{"role": "user", "content": "score"}], logprobs=True, top_logprobs=2) == judged
    assert again.chat([{"role": "user", "content": "go"}], tools=tools).tool_calls == reply.tool_calls
    assert again.stats.calls == 0 and openai_server.count == 2


def test_config_from_env_per_role_with_fallback():
    from orglab.llm import config_from_env

    assert config_from_env("judge", {}) is None
    env = {"ORGLAB_LLM_MODEL": "m1", "ORGLAB_LLM_BASE_URL": "http://x/v1", "ORGLAB_AGENT_MODEL": "m2",
           "ORGLAB_LLM_API_KEY_ENV": "none"}
    judge, agent = config_from_env("judge", env), config_from_env("agent", env)
    assert (judge.model, judge.base_url, judge.api_key_env) == ("m1", "http://x/v1", None)
    assert (agent.model, agent.base_url) == ("m2", "http://x/v1")
    with pytest.raises(OrglabError):
        config_from_env("critic", env)
