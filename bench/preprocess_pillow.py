"""Pillow peer for bench/preprocess.ts: open_clip's eval transform (PIL paths of torchvision restated with
numpy for ToTensor/Normalize), timed per image. Usage: preprocess_pillow.py IMAGE SIZE RUNS OUT_RAW
Prints JSON {"total_ms": [...], "decode_ms": [...], "transform_ms": [...], "cpu_ms": [...]}; writes the 8-bit [3,S,S] result."""
import json
import sys
import time

import numpy as np
from PIL import Image

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)[:, None, None]
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)[:, None, None]


def transform(im, size):
    w, h = im.size
    short, long = (w, h) if w <= h else (h, w)
    if short != size:
        new_long = int(size * long / short)
        im = im.resize((size, new_long) if w <= h else (new_long, size), Image.BICUBIC)
    w, h = im.size
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    rgb = im.crop((left, top, left + size, top + size)).convert("RGB")
    u8 = np.asarray(rgb).transpose(2, 0, 1)
    return u8, (u8.astype(np.float32) / np.float32(255) - MEAN) / STD


def main():
    path, size, runs, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    total, decode, trans, cpu = [], [], [], []
    for _ in range(runs):
        c0 = time.process_time()
        t0 = time.perf_counter()
        im = Image.open(path)
        im.load()
        t1 = time.perf_counter()
        u8, _x = transform(im, size)
        t2 = time.perf_counter()
        cpu.append((time.process_time() - c0) * 1000)
        total.append((t2 - t0) * 1000)
        decode.append((t1 - t0) * 1000)
        trans.append((t2 - t1) * 1000)
    open(out, "wb").write(np.ascontiguousarray(u8).tobytes())
    print(json.dumps({"total_ms": total, "decode_ms": decode, "transform_ms": trans, "cpu_ms": cpu}))


main()
