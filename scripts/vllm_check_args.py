"""Parses a `vllm serve` argument vector with vLLM's own parser, as the server would at start,
without starting it. Prints what vLLM understood (JSON) or exits 2 with its error.

    VLLM_TARGET_DEVICE=cpu python scripts/vllm_check_args.py ARG...

The argument vector is what the image's entrypoint (`vllm serve`) receives: the model first,
then flags. Used by tests/real_vllm.rs to check every command line the tool builds for vLLM
(RunPod containers, Slurm jobs, local processes) against the release it pins.
"""

import json
import sys

from vllm.entrypoints.cli.main import main as _unused  # noqa: F401  (the CLI's own imports)
from vllm.entrypoints.cli.serve import ServeSubcommand
from vllm.utils.argparse_utils import FlexibleArgumentParser


def main():
    root = FlexibleArgumentParser(prog="vllm")
    sub = root.add_subparsers(dest="subparser")
    ServeSubcommand().subparser_init(sub)
    args = root.parse_args(["serve", *sys.argv[1:]])
    model = getattr(args, "model_tag", None) or args.model
    print(json.dumps({
        "model": model,
        "served_model_name": args.served_model_name,
        "host": args.host,
        "port": args.port,
        "tensor_parallel_size": args.tensor_parallel_size,
        "max_model_len": args.max_model_len,
        "reasoning_parser": getattr(args, "reasoning_parser", None),
        "gpu_memory_utilization": args.gpu_memory_utilization,
    }))


if __name__ == "__main__":
    main()
