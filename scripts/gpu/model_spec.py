#!/usr/bin/env python3
"""Writes the JSON load request (native/core/spec.h) that native/torch/tools (cclip_gpu_check) reads: the
architecture (a JSON file written by scripts/gpu/architecture.ts, which parses open_clip_config.json as the
library does), the weight tensors of MODEL_DIR/open_clip_model.safetensors and, when present, the inputs of
MODEL_DIR/expected.safetensors. Standard library only.
Usage: model_spec.py MODEL_DIR ARCHITECTURE_JSON > request.json"""
import json, os, struct, sys


def header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
    return 8 + n, {k: v for k, v in h.items() if k != "__metadata__"}


def strides(shape):
    out, s = [], 1
    for d in reversed(shape):
        out.insert(0, s)
        s *= d
    return out


def entries(path, with_strides):
    start, h = header(path)
    out = []
    for name, v in h.items():
        b, e = v["data_offsets"]
        entry = {"name": name, "dtype": v["dtype"], "shape": v["shape"], "file": os.path.abspath(path), "offset": start + b, "byteLength": e - b}
        if with_strides:
            entry["strides"] = strides(v["shape"])
        out.append(entry)
    return out


def main(model_dir, architecture):
    request = {
        "architecture": json.load(open(architecture)),
        "tensors": entries(os.path.join(model_dir, "open_clip_model.safetensors"), True),
        "options": {"precision": "fp32"},  # the tool's command line decides device and precision
    }
    expected = os.path.join(model_dir, "expected.safetensors")
    if os.path.exists(expected):
        request["inputs"] = [e for e in entries(expected, False) if e["name"] in ("pixels", "tokens")]
    json.dump(request, sys.stdout)
    print()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
