#!/usr/bin/env python3
"""A copy of a model folder whose pipeline.toml has some settings changed, for `cogview eval`
sweeps (docs/default-model.md, session 11). The weight files are symlinked, not copied.

    python3 tools/eval/pipeline_variant.py OUT coglm.temperature=0.5 coglm.top_k_clusters=1
    python3 tools/eval/pipeline_variant.py OUT --from DIR dsr.temperature=0.05
    cogview eval --config OUT/pipeline.toml ...

Each SECTION.KEY=VALUE replaces the key's line in [SECTION] or adds it at the section's end;
VALUE is written as given (TOML syntax: 0.5, [1, 1], "text").
"""
import os
import sys
import tomllib


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    out, rest = argv[0], argv[1:]
    src = "models/default"
    if rest[:1] == ["--from"]:
        src, rest = rest[1], rest[2:]
    edits = []
    for e in rest:
        key, sep, value = e.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or not section or not name:
            sys.exit(f"{e!r}: give SECTION.KEY=VALUE, e.g. coglm.temperature=0.5")
        edits.append((section, name, value))
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(src):
        if f == "pipeline.toml":
            continue
        dst = os.path.join(out, f)
        if os.path.lexists(dst):
            os.remove(dst)
        os.symlink(os.path.abspath(os.path.join(src, f)), dst)
    lines = open(os.path.join(src, "pipeline.toml")).read().splitlines()
    for section, name, value in edits:
        start = next((i for i, l in enumerate(lines) if l.strip() == f"[{section}]"), None)
        if start is None:
            sys.exit(f"{src}/pipeline.toml has no [{section}] section")
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
        new = f"{name} = {value}"
        hit = [i for i in range(start + 1, end) if lines[i].split("=")[0].strip() == name]
        if hit:
            lines[hit[0]] = new
        else:
            while end > start + 1 and not lines[end - 1].strip():
                end -= 1
            lines.insert(end, new)
    text = "\n".join(lines) + "\n"
    tomllib.loads(text)  # a typo in VALUE fails here, not in cogview
    with open(os.path.join(out, "pipeline.toml"), "w") as f:
        f.write(text)
    print(os.path.join(out, "pipeline.toml"))


if __name__ == "__main__":
    main(sys.argv[1:])
