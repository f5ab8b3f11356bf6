"""Checks that every flag of an SGLang `launch_server` command line is one SGLang defines, read
from the source in its wheel (its server needs CUDA; it cannot run here).

    python scripts/sglang_check_args.py SGLANG.whl ARG...

SGLang (0.5.x) builds its CLI from dataclasses in `sglang/srt/arg_groups/fields/*.py`: each
annotated field `name: A[type, Arg(..., aliases=[...], cli_name=...)]` is `--name-with-dashes`
(or its `cli_name`), plus its aliases. Prints the flags it found for the arguments, exits 1
naming any that SGLang does not define. Used by tests/real_vllm.rs.
"""

import ast
import json
import sys
import zipfile


def flags_of(wheel):
    found = set()
    with zipfile.ZipFile(wheel) as z:
        names = [n for n in z.namelist()
                 if n.startswith("sglang/srt/arg_groups/fields/") and n.endswith(".py")]
        for n in names:
            tree = ast.parse(z.read(n).decode())
            for node in ast.walk(tree):
                if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                    continue
                field = node.target.id
                cli = "--" + field.replace("_", "-")
                for sub in ast.walk(node.annotation):
                    if isinstance(sub, ast.keyword) and sub.arg == "cli_name":
                        if isinstance(sub.value, ast.Constant):
                            cli = sub.value.value
                    if isinstance(sub, ast.keyword) and sub.arg == "aliases":
                        if isinstance(sub.value, ast.List):
                            found.update(e.value for e in sub.value.elts
                                         if isinstance(e, ast.Constant))
                found.add(cli)
    return found


def main():
    wheel, args = sys.argv[1], sys.argv[2:]
    known = flags_of(wheel)
    used = [a.split("=")[0] for a in args if a.startswith("--")]
    unknown = [f for f in used if f not in known]
    print(json.dumps({"checked": used, "unknown": unknown, "defined": len(known)}))
    sys.exit(1 if unknown or len(known) < 100 else 0)


if __name__ == "__main__":
    main()
