"""Talk to the sandbox's vLLM with the official openai client, as a customer's application would.

Reads OPENAI_BASE_URL, OPENAI_API_KEY and MODEL from the environment; prints one JSON object.
Three requests with the key and one without it; nothing asserts on the (random) text. The chat
completions ask vLLM to ignore end-of-sequence (its extension, passed as extra_body), so each one
generates exactly max_tokens tokens whatever the random model says.
"""
import json
import os
import sys
import time

import openai

base, key, model = os.environ["OPENAI_BASE_URL"], os.environ["OPENAI_API_KEY"], os.environ["MODEL"]
client = openai.OpenAI(base_url=base, api_key=key, timeout=120, max_retries=0)
out = {"openai_version": openai.__version__}

out["models"] = [m.id for m in client.models.list().data]

started = time.monotonic()
chat = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "Hello, who are you?"}], max_tokens=16, temperature=0,
    extra_body={"ignore_eos": True})
out["chat"] = {"model": chat.model, "finish_reason": chat.choices[0].finish_reason,
               "completion_tokens": chat.usage.completion_tokens, "prompt_tokens": chat.usage.prompt_tokens,
               "content_type": type(chat.choices[0].message.content).__name__,
               "seconds": round(time.monotonic() - started, 3)}

started = time.monotonic()
first = None
chunks = 0
usage = None
finish = None
stream = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "Count to five."}], max_tokens=16, temperature=0,
    stream=True, stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
for event in stream:
    if event.usage:
        usage = event.usage
    if event.choices and event.choices[0].delta.content:
        chunks += 1
        first = first if first is not None else time.monotonic() - started
    if event.choices and event.choices[0].finish_reason:
        finish = event.choices[0].finish_reason
out["stream"] = {"content_chunks": chunks, "ttft_seconds": round(first, 3) if first is not None else None,
                 "completion_tokens": usage.completion_tokens if usage else None, "finish_reason": finish,
                 "seconds": round(time.monotonic() - started, 3)}

try:
    openai.OpenAI(base_url=base, api_key="wrong-key", timeout=30, max_retries=0).models.list()
    out["wrong_key"] = "accepted"
except openai.AuthenticationError as exc:
    out["wrong_key"] = exc.status_code

json.dump(out, sys.stdout)
