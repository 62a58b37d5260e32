"""The Prober's requests and answers, with a stand-in for open_url that records each call: what it
sends (method, URL, body, headers, TLS and redirect settings), the figures it derives, and the
message of every failure."""
import io
import json

import pytest

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible_collections.onprem.deepseek.plugins.module_utils._inference_probe import Prober, ProbeError

PARAMS = {"url": "https://engine.test:8000/v1/", "api_key": "k-123", "timeout": 7, "validate_certs": True,
          "ca_path": "/etc/ca.pem", "prompt": "Say hi", "max_tokens": 5, "temperature": 0.0,
          "ignore_eos": False, "health_timeout": 0, "health_interval": 1, "requests": 1, "stream": False,
          "model": None}


class _Answer(io.BytesIO):
    def __init__(self, body):
        super().__init__(body if isinstance(body, bytes) else json.dumps(body).encode())
        self.closed_by_caller = False

    def close(self):
        self.closed_by_caller = True
        super().close()


class _Opener:
    """Answers in order; records (url, kwargs) of each call."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, url, **kwargs):
        self.calls.append((url, kwargs))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class _Clock:
    def __init__(self, *times):
        self.times = list(times)

    def __call__(self):
        return self.times.pop(0)


def _prober(opener, clock=None, **params):
    return Prober(dict(PARAMS, **params), opener=opener, clock=clock or _Clock(0.0, 0.0), sleep=lambda s: None)


def test_a_get_sends_the_key_and_accepts_json_only():
    opener = _Opener(_Answer({"data": [{"id": "m1"}, "junk", {"id": "m2"}]}))
    assert _prober(opener).models() == ["m1", "m2"]
    assert opener.calls == [("https://engine.test:8000/v1/models", {
        "method": "GET", "data": None,
        "headers": {"Accept": "application/json", "Authorization": "Bearer k-123"},
        "timeout": 7, "validate_certs": True, "ca_path": "/etc/ca.pem", "use_proxy": False,
        "follow_redirects": "none"})]


def test_no_key_no_authorization_header():
    opener = _Opener(_Answer({"data": []}))
    _prober(opener, api_key=None, url="http://e:1").models()
    assert opener.calls[0][0] == "http://e:1/v1/models"
    assert opener.calls[0][1]["headers"] == {"Accept": "application/json"}


def test_a_chat_posts_json_and_derives_its_figures():
    answer = _Answer({"model": "m1", "choices": [{"finish_reason": "length"}],
                      "usage": {"completion_tokens": 5, "prompt_tokens": 9}})
    opener = _Opener(answer)
    result = _prober(opener, clock=_Clock(10.0, 12.5)).chat("m1")
    assert result == {"stream": False, "total_s": 2.5, "ttft_s": None, "completion_tokens": 5, "prompt_tokens": 9,
                      "tokens_per_s": 2.0, "finish_reason": "length"}
    url, call = opener.calls[0]
    assert (url, call["method"]) == ("https://engine.test:8000/v1/chat/completions", "POST")
    assert call["headers"] == {"Accept": "application/json", "Content-Type": "application/json",
                               "Authorization": "Bearer k-123"}
    assert json.loads(call["data"]) == {"model": "m1", "messages": [{"role": "user", "content": "Say hi"}],
                                        "max_tokens": 5, "temperature": 0.0}
    assert answer.closed_by_caller


def test_ignore_eos_and_stream_options_are_asked_for():
    body = _prober(_Opener(), ignore_eos=True)._request_body("m1", True)  # pylint: disable=protected-access
    assert body["ignore_eos"] is True
    assert (body["stream"], body["stream_options"]) == (True, {"include_usage": True})


@pytest.mark.parametrize("answer, message", [
    ({"model": "m1", "choices": []}, "POST /v1/chat/completions: no choices in the answer"),
    (["not", "a", "dict"], "POST /v1/chat/completions: no choices in the answer"),
    ({"model": "m2", "choices": [{}]}, "POST /v1/chat/completions: answered by model 'm2', expected 'm1'"),
    (b"<html>", "POST /v1/chat/completions: the answer is not JSON: b'<html>'"),
])
def test_wrong_chat_answers_are_named(answer, message):
    with pytest.raises(ProbeError) as err:
        _prober(_Opener(_Answer(answer)), clock=_Clock(0.0, 1.0)).chat("m1")
    assert str(err.value) == message


def test_a_chat_without_usage_has_no_rate():
    result = _prober(_Opener(_Answer({"model": "m1", "choices": [{}]})), clock=_Clock(0.0, 1.0)).chat("m1")
    assert (result["completion_tokens"], result["prompt_tokens"], result["tokens_per_s"]) == (None, None, None)


def test_an_http_error_names_the_status_the_401_hint_and_the_detail():
    denied = HTTPError("https://engine.test:8000/v1/models", 401, "Unauthorized", {}, io.BytesIO(b" bad key \n"))
    with pytest.raises(ProbeError) as err:
        _prober(_Opener(denied)).models()
    assert str(err.value) == "GET /v1/models: HTTP 401 (wrong or missing API key) bad key"
    broken = HTTPError("u", 500, "Oops", {}, io.BytesIO(b"x" * 400))
    with pytest.raises(ProbeError) as err:
        _prober(_Opener(broken)).models()
    assert str(err.value) == "GET /v1/models: HTTP 500 " + "x" * 300


def test_an_unreachable_endpoint_names_the_url_and_the_reason():
    with pytest.raises(ProbeError) as err:
        _prober(_Opener(URLError("connection refused"))).models()
    assert str(err.value) == "GET https://engine.test:8000/v1/models: connection refused"
    with pytest.raises(ProbeError) as err:
        _prober(_Opener(OSError("reset"))).models()
    assert str(err.value) == "GET https://engine.test:8000/v1/models: reset"


def test_models_needs_a_data_list():
    with pytest.raises(ProbeError, match=r"^GET /v1/models: no 'data' list in the answer$"):
        _prober(_Opener(_Answer({"data": {}}))).models()


def _sse(*events):
    return _Answer(b"".join(b"data: " + e.encode() + b"\n\n" for e in events))


def test_a_stream_is_timed_from_the_request_to_its_first_token():
    chunk = json.dumps({"choices": [{"delta": {"content": "hi"}}]})
    usage = {"completion_tokens": 4, "prompt_tokens": 3}
    last = json.dumps({"choices": [{"delta": {}, "finish_reason": "stop"}], "usage": usage})
    answer = _sse(chunk, chunk, last, "[DONE]")
    opener = _Opener(answer)
    result = _prober(opener, clock=_Clock(100.0, 100.5, 102.0)).chat_stream("m1")
    assert result["stream"] is True and result["chunks"] == 2
    assert result["ttft_s"] == pytest.approx(0.5)
    assert result["total_s"] == pytest.approx(2.0)
    assert (result["completion_tokens"], result["prompt_tokens"], result["finish_reason"]) == (4, 3, "stop")
    assert result["tokens_per_s"] == pytest.approx(2.0)
    assert json.loads(opener.calls[0][1]["data"])["stream"] is True
    assert answer.closed_by_caller


def test_an_empty_stream_fails():
    with pytest.raises(ProbeError, match=r"^POST /v1/chat/completions \(stream\): no content in the stream$"):
        _prober(_Opener(_sse("[DONE]")), clock=_Clock(0.0, 1.0, 2.0)).chat_stream("m1")


def test_run_probes_the_first_model_when_none_is_named_and_summarises():
    opener = _Opener(_Answer({"data": [{"id": "m1"}]}),
                     _Answer({"model": "m1", "choices": [{}], "usage": {"completion_tokens": 2}}),
                     _Answer({"model": "m1", "choices": [{}], "usage": {"completion_tokens": 4}}))
    result = _prober(opener, clock=_Clock(0.0, 1.0, 5.0, 7.0), requests=2).run()
    assert (result["url"], result["models"], result["model"], result["requests"]) == (
        "https://engine.test:8000", ["m1"], "m1", 2)
    assert result["completion_tokens"] == 6
    assert result["latency"]["total_s"] == {"min": 1.0, "mean": 1.5, "median": 1.5, "max": 2.0}
    assert result["latency"]["ttft_s"] is None
    assert "health_retries" not in result


@pytest.mark.parametrize("names, model, message", [
    ([], None, "/v1/models lists no model"),
    (["m1"], "m2", "served model 'm2' not in /v1/models (m1)"),
    ([], "m2", "served model 'm2' not in /v1/models (none)"),
])
def test_run_refuses_a_model_that_is_not_served(names, model, message):
    opener = _Opener(_Answer({"data": [{"id": n} for n in names]}))
    with pytest.raises(ProbeError) as err:
        _prober(opener, model=model).run()
    assert str(err.value) == message


def test_health_is_retried_until_it_answers_then_counted():
    opener = _Opener(URLError("refused"), URLError("refused"), _Answer(b""))
    slept = []
    prober = Prober(dict(PARAMS, health_timeout=10, health_interval=3), opener=opener,
                    clock=_Clock(0.0, 1.0, 2.0), sleep=slept.append)
    assert prober.wait_health() == 2
    assert slept == [3, 3]
    assert [url for url, _kw in opener.calls] == ["https://engine.test:8000/health"] * 3
