"""An OpenAI-compatible streaming server on uvicorn + Starlette: the HTTP stack vLLM and
SGLang serve with (uvicorn's h11 or httptools parser, chunked StreamingResponse, keep-alive
timeout), answering in vLLM's chunk format (`shared/reference/chat-stream-sample.txt`).
No model: every prompt word is one token, answers are exactly `max_tokens` tokens.

    python scripts/uvicorn_server.py PORT h11|httptools [KEEP_ALIVE_S]

Endpoints: /health, /v1/models, /version, /tokenize (vLLM's `{"count": n}`),
/v1/chat/completions and /v1/completions (streaming and not), 404 for another model.
"""

import asyncio
import json
import sys
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

MODEL = "uvicorn-replay"
# Tokens a chat template adds around the messages (what calibration measures).
CHAT_TEMPLATE_TOKENS = 5
TOKEN_DELAY_S = 0.002


def prompt_tokens(body: dict) -> int:
    if "messages" in body:
        words = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        return words + CHAT_TEMPLATE_TOKENS
    return len(str(body.get("prompt", "")).split())


def not_found(model: str) -> JSONResponse:
    return JSONResponse(
        {
            "object": "error",
            "message": f"The model `{model}` does not exist.",
            "type": "NotFoundError",
            "param": None,
            "code": 404,
        },
        status_code=404,
    )


async def health(_: Request):
    return JSONResponse({})


async def models(_: Request):
    return JSONResponse({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "test"}]})


async def version(_: Request):
    return JSONResponse({"version": f"uvicorn-{uvicorn.__version__}"})


async def tokenize(request: Request):
    body = await request.json()
    n = prompt_tokens(body)
    return JSONResponse({"count": n, "max_model_len": 8192, "tokens": list(range(n))})


def chunk(rid: str, chat: bool, piece: str, finish=None) -> str:
    choice = (
        {"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": finish}
        if chat
        else {"index": 0, "text": piece, "logprobs": None, "finish_reason": finish}
    )
    kind = "chat.completion.chunk" if chat else "text_completion"
    return json.dumps(
        {"id": rid, "object": kind, "created": int(time.time()), "model": MODEL, "choices": [choice]},
        separators=(",", ":"),
    )


async def generate(request: Request, chat: bool):
    body = await request.json()
    if body.get("model") != MODEL:
        return not_found(str(body.get("model")))
    n_prompt = prompt_tokens(body)
    n_out = int(body.get("max_tokens") or 16)
    rid = f"{'chatcmpl' if chat else 'cmpl'}-{time.monotonic_ns():x}"
    usage = {"prompt_tokens": n_prompt, "total_tokens": n_prompt + n_out, "completion_tokens": n_out}
    if not body.get("stream"):
        await asyncio.sleep(TOKEN_DELAY_S * n_out)
        text = "tok " * n_out
        choice = {"index": 0, "message": {"role": "assistant", "content": text}} if chat else {"index": 0, "text": text}
        return JSONResponse({"id": rid, "model": MODEL, "choices": [choice], "usage": usage})

    async def events():
        if chat:
            first = json.loads(chunk(rid, True, ""))
            first["choices"][0]["delta"] = {"role": "assistant", "content": ""}
            yield f"data: {json.dumps(first, separators=(',', ':'))}\n\n"
        for i in range(n_out):
            await asyncio.sleep(TOKEN_DELAY_S)
            last = i == n_out - 1
            yield f"data: {chunk(rid, chat, 'tok ', 'length' if last else None)}\n\n"
        if (body.get("stream_options") or {}).get("include_usage"):
            tail = {"id": rid, "object": "chat.completion.chunk" if chat else "text_completion",
                    "created": int(time.time()), "model": MODEL, "choices": [], "usage": usage}
            yield f"data: {json.dumps(tail, separators=(',', ':'))}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def chat(request: Request):
    return await generate(request, True)


async def completions(request: Request):
    return await generate(request, False)


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/v1/models", models),
        Route("/version", version),
        Route("/tokenize", tokenize, methods=["POST"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
    ]
)

if __name__ == "__main__":
    port, http = int(sys.argv[1]), sys.argv[2]
    keep_alive = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    uvicorn.run(app, host="127.0.0.1", port=port, http=http, timeout_keep_alive=keep_alive,
                log_level="warning", loop="asyncio")
