#!/usr/bin/env python3
"""Writes the spec that native/torch/tools (cclip_gpu_check) reads: the architecture of a model directory
(open_clip_config.json, parsed as lib/architecture.ts does), its weight tensors (open_clip_model.safetensors)
and, when present, the inputs of expected.safetensors. Standard library only.
Usage: model_spec.py MODEL_DIR > model.spec"""
import json, os, struct, sys

TIMM = {  # depths, dims, LayerNorm eps (lib/architecture.ts TIMM_CONVNEXT)
    "convnext_base": ([3, 3, 27, 3], [128, 256, 512, 1024], 1e-6),
    "convnext_large": ([3, 3, 27, 3], [192, 384, 768, 1536], 1e-6),
    "convnext_xlarge": ([3, 3, 27, 3], [256, 512, 1024, 2048], 1e-6),
    "convnext_xxlarge": ([3, 4, 30, 3], [384, 768, 1536, 3072], 1e-5),
}


def header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
    return 8 + n, {k: v for k, v in h.items() if k != "__metadata__"}


def records(kind, path):
    start, h = header(path)
    out = []
    for name, v in h.items():
        b, e = v["data_offsets"]
        out.append("\t".join([kind, name, v["dtype"], os.path.abspath(path), str(start + b), str(e - b), str(len(v["shape"]))] + [str(d) for d in v["shape"]]))
    return out


def main(model_dir):
    cfg = json.load(open(os.path.join(model_dir, "open_clip_config.json")))["model_cfg"]
    v, t = cfg["vision_cfg"], cfg["text_cfg"]
    depths, dims, eps = TIMM[v["timm_model_name"]]
    kw = v.get("timm_model_kwargs") or {}
    size = v.get("image_size", 224)
    size = size[0] if isinstance(size, list) else size
    lines = [
        f"arch\tembed_dim\t{cfg['embed_dim']}",
        "arch\tdepths\t" + "\t".join(str(d) for d in kw.get("depths", depths)),
        "arch\tdims\t" + "\t".join(str(d) for d in kw.get("dims", dims)),
        f"arch\tnorm_eps\t{kw.get('norm_eps', eps)!r}",
        f"arch\timage_size\t{size}",
        f"arch\tproj\t{v.get('timm_proj', 'linear')}",
        f"arch\tproj_bias\t{int(bool(v.get('timm_proj_bias', False)))}",
        f"arch\twidth\t{t.get('width', 512)}",
        f"arch\theads\t{t.get('heads', 8)}",
        f"arch\tlayers\t{t.get('layers', 12)}",
        f"arch\tcontext_length\t{t.get('context_length', 77)}",
        f"arch\tvocab_size\t{t.get('vocab_size', 49408)}",
    ]
    lines += [r for r in records("tensor", os.path.join(model_dir, "open_clip_model.safetensors")) if "\tlogit_scale\t" not in r]
    expected = os.path.join(model_dir, "expected.safetensors")
    if os.path.exists(expected):
        lines += [r for r in records("input", expected) if r.split("\t")[1] in ("pixels", "tokens")]
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1])
