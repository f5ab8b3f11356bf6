"""Starts llama.cpp's own HTTP server (`tools/server`, embedded in the `xllamacpp` wheel) on
127.0.0.1 and keeps it running until killed.

    python scripts/llamacpp_server.py MODEL.gguf PORT [N_PARALLEL]

Equivalent to `llama-server -m MODEL --host 127.0.0.1 --port PORT -c 16384 -np N -t 2
--metrics --slots --alias tiny`.
"""

import signal
import sys
import time

import xllamacpp as xlc


def main():
    model, port = sys.argv[1], int(sys.argv[2])
    n_parallel = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    p = xlc.CommonParams()
    p.model.path = model
    p.model_alias = {"tiny"}
    p.hostnames = ["127.0.0.1"]
    p.port = port
    p.n_parallel = n_parallel
    p.n_ctx = 16384
    p.cpuparams.n_threads = 2
    p.cpuparams_batch.n_threads = 2
    p.endpoint_metrics = True
    p.endpoint_slots = True
    server = xlc.Server(p)
    print(f"llama.cpp server on http://127.0.0.1:{port} ({xlc.BUILD_INFO if hasattr(xlc, 'BUILD_INFO') else ''})", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            time.sleep(3600)
    finally:
        del server


if __name__ == "__main__":
    main()
