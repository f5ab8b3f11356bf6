"""vLLM's own Anthropic Messages stream made from a captured chat stream: feeds the events of
a chat SSE capture (argument 1) through vLLM 0.32's `message_stream_converter` and prints what
`/v1/messages` would have sent. Made `tests/fixtures/vllm-0.32/messages-reasoning-stream.txt`
from `chat-reasoning-stream.txt` (a reasoning parser needs its own server; the converter is the
code that server would run). Run with the real vLLM's Python:
  ~/.cache/llm-inf-bench/real-vllm/venv-0.32.0/bin/python scripts/anthropic_from_chat.py FILE
"""
import asyncio, sys
from vllm.entrypoints.anthropic.serving import AnthropicServingMessages as S
lines = [l for l in open(sys.argv[1]).read().split("\n\n") if l.strip()]
async def gen():
    for l in lines:
        yield l + "\n\n"
async def main():
    self = S.__new__(S)
    async for e in S.message_stream_converter(self, gen()):
        sys.stdout.write(e)
asyncio.run(main())
