#!/usr/bin/env python3
"""Compares our outputs (safetensors from cclip_gpu_check) with a model's expected.safetensors, key by key,
intermediates included (text captures are compared on the positions we computed). Standard library only.
Usage: compare.py EXPECTED GOT [--max-rel 1e-4] [--min-cos 0.999]
  every key: max|got - want| / max|want| <= max-rel (when given); features: min row cosine >= min-cos (when given)."""
import argparse, array, json, math, struct, sys


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in h.items():
        if k == "__metadata__" or v["dtype"] != "F32":
            continue
        b, e = v["data_offsets"]
        a = array.array("f")
        a.frombytes(data[b:e])
        out[k] = (v["shape"], a)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("expected"); p.add_argument("got")
    p.add_argument("--max-rel", type=float); p.add_argument("--min-cos", type=float)
    a = p.parse_args()
    exp, got = load(a.expected), load(a.got)
    ok = True
    for k, (shape, g) in got.items():
        if k not in exp:
            print(f"{k}: not in expected (skipped)")
            continue
        w = exp[k][1][: len(g)]
        if len(w) != len(g):
            print(f"{k}: length {len(g)} vs expected {len(w)}: FAIL"); ok = False; continue
        maxref = max(abs(x) for x in w) or 1.0
        rel = max(abs(x - y) for x, y in zip(g, w)) / maxref
        line = f"{k}: max rel diff {rel:.3e}"
        if math.isnan(rel) or (a.max_rel is not None and not rel <= a.max_rel):
            ok = False; line += " FAIL"
        if k.endswith("_features") and len(shape) == 2:
            d = shape[1]
            cos = min(sum(x * y for x, y in zip(g[r * d:(r + 1) * d], w[r * d:(r + 1) * d])) /
                      (math.sqrt(sum(x * x for x in g[r * d:(r + 1) * d]) * sum(y * y for y in w[r * d:(r + 1) * d])) or 1.0)
                      for r in range(shape[0]))
            line += f"  min cos {cos:.6f}"
            if math.isnan(cos) or (a.min_cos is not None and not cos >= a.min_cos):
                ok = False; line += " FAIL"
        print(line)
    print("compare:", "ok" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
