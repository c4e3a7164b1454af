#!/usr/bin/env python3
"""Stage times of one `cogview generate` run from its progress lines, each prefixed with a Unix
time stamp (tools/bench/gpu_bench.sh writes them). Prints one JSON line.

  stage1_tokens_per_s   image tokens per second per sequence, from the first to the last stage-1
                        progress line (both after the KV-cache prefill; loading excluded)
  stage1_400_s          400 tokens at that rate (one 20x20 grid)
  dsr_s, itersr_pass_s  mean time per DSR forward (per image) and per ItersR pass: the time from
                        the previous progress line to each DSR / ItersR line
  decode_s              mean time per image of the VQ decoding to 480 px
  to_first_line_s       start of the process to the first stage-1 line (start-up, weight hashing,
                        loading, CUDA start, prefill and the first 40 tokens)
  total_s               the command's own "N image(s) in X s"
"""
import argparse
import json
import re
import sys

LINE = re.compile(r"^(\d+\.\d+) (.*)$")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("--name", required=True)
    ap.add_argument("--dtype", required=True)
    ap.add_argument("--batch", type=int, required=True)
    a = ap.parse_args()
    rows = []
    for raw in open(a.log, encoding="utf-8", errors="replace"):
        m = LINE.match(raw.rstrip("\n"))
        if m:
            rows.append((float(m.group(1)), m.group(2)))
    out = {"impl": "cogview candle-cuda", "name": a.name, "dtype": a.dtype, "batch": a.batch, "ok": False}
    if not rows or rows[0][1] != "start":
        out["error"] = "no start line"
        print(json.dumps(out))
        return
    start = rows[0][0]
    s1 = [(t, int(m.group(1))) for t, l in rows if (m := re.match(r"stage 1 \(CogLM\): (\d+)/\d+ tokens", l))]
    per = {"dsr": [], "itersr": [], "decode": []}
    prev = None
    for t, l in rows[1:]:
        kind = ("dsr" if l.startswith("stage 2 (DSR)") else "itersr" if l.startswith("stage 3 (ItersR)")
                else "decode" if l.startswith("decoding:") else None)
        if kind and prev is not None:
            per[kind].append(t - prev)
        if l.startswith(("stage ", "decoding:")):
            prev = t
    total = [float(m.group(1)) for _, l in rows if (m := re.match(r"\d+ image\(s\) in ([\d.]+) s", l))]
    if len(s1) >= 2 and s1[-1][0] > s1[0][0]:
        rate = (s1[-1][1] - s1[0][1]) / (s1[-1][0] - s1[0][0])
        out.update(stage1_tokens_per_s=round(rate, 1), stage1_400_s=round(400 / rate, 3),
                   to_first_line_s=round(s1[0][0] - start, 2))
    for k, v in per.items():
        if v:
            out[{"dsr": "dsr_s", "itersr": "itersr_pass_s", "decode": "decode_s"}[k]] = round(sum(v) / len(v), 4)
            out[k + "_count"] = len(v)
    if total:
        out["total_s"] = total[-1]
        out["ok"] = True
    else:
        out["error"] = rows[-1][1][:300]
    out["wall_s"] = round(rows[-1][0] - start, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
