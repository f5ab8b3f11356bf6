"""Parses `vllm serve` argument vectors with vLLM's own parser, as the server would at start,
without starting it. Prints what vLLM understood (JSON) or exits 2 with its error.

    VLLM_TARGET_DEVICE=cpu python scripts/vllm_check_args.py ARG...
    VLLM_TARGET_DEVICE=cpu python scripts/vllm_check_args.py --many < argvs.json

With `--many`, stdin is a JSON list of argument vectors and the answer one JSON line each,
`{"ok": …}` or `{"error": …}` (vLLM's import takes seconds: one process for them all).

The argument vector is what the image's entrypoint (`vllm serve`) receives: the model first,
then flags. Used by tests/real_vllm.rs to check every command line the tool builds for vLLM
(RunPod containers, Slurm jobs, local processes) against the release it pins.
"""

import json
import sys

from vllm.entrypoints.cli.main import main as _unused  # noqa: F401  (the CLI's own imports)
from vllm.entrypoints.cli.serve import ServeSubcommand
from vllm.utils.argparse_utils import FlexibleArgumentParser


def parse(argv):
    root = FlexibleArgumentParser(prog="vllm")
    sub = root.add_subparsers(dest="subparser")
    ServeSubcommand().subparser_init(sub)
    args = root.parse_args(["serve", *argv])
    model = getattr(args, "model_tag", None) or args.model
    return {
        "model": model,
        "served_model_name": args.served_model_name,
        "host": args.host,
        "port": args.port,
        "tensor_parallel_size": args.tensor_parallel_size,
        "max_model_len": args.max_model_len,
        "reasoning_parser": getattr(args, "reasoning_parser", None),
        "gpu_memory_utilization": args.gpu_memory_utilization,
    }


def main():
    if sys.argv[1:] != ["--many"]:
        print(json.dumps(parse(sys.argv[1:])))
        return
    for argv in json.load(sys.stdin):
        try:
            print(json.dumps({"ok": parse(argv)}))
        except SystemExit:  # argparse's way of refusing (its message went to stderr)
            print(json.dumps({"error": "refused by vLLM's parser (see stderr)"}))


if __name__ == "__main__":
    main()
