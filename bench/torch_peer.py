"""PyTorch CPU peer for bench/native-bench.ts: times clip_reference.py's model on the same weights.

Prints one JSON object (the same fields as the native child) on stdout's last line. Run one dtype per process
so that peak RSS is that dtype's own.
  python3 bench/torch_peer.py --model /tmp/xxl --dtype fp32 --threads 2
"""
import argparse, json, os, resource, statistics, sys, time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def reference_module(path):
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    import clip_reference  # noqa: E402
    return clip_reference


def measure(fn, budget_s, max_iters=5):
    """Median seconds over up to max_iters runs after one warm-up, fewer when a run is slow."""
    t = time.perf_counter(); fn(); first = time.perf_counter() - t
    iters = max(1, min(max_iters, int(budget_s / max(first, 1e-6))))
    times = []
    for _ in range(iters):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return statistics.median(times), len(times)


def tokens_with_end_at(batch, end, context=77, seed=0):
    g = torch.Generator().manual_seed(seed)
    tok = torch.zeros((batch, context), dtype=torch.int64)
    tok[:, 0] = 49406
    tok[:, 1:end] = torch.randint(1, 49000, (batch, end - 1), generator=g)
    tok[:, end] = 49407
    return tok


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--budget", type=float, default=20.0, help="seconds of timed runs per measurement (at least one)")
    p.add_argument("--reference", default=os.path.join(HERE, "..", "..", "shared", "reference", "clip_reference.py"))
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    ref = reference_module(a.reference)
    dtype = torch.float32 if a.dtype == "fp32" else torch.bfloat16
    t = time.perf_counter()
    model, cfg = ref.load(a.model, "cpu", dtype)
    load_s = time.perf_counter() - t
    size = cfg["model_cfg"]["vision_cfg"]["image_size"]
    g = torch.Generator().manual_seed(1)
    img1 = torch.randn((1, 3, size, size), generator=g).to(dtype)
    img8 = torch.randn((a.batch, 3, size, size), generator=g).to(dtype)
    tok77, tok12, tok77b = tokens_with_end_at(1, 76), tokens_with_end_at(1, 11), tokens_with_end_at(a.batch, 76)
    out = {"engine": "pytorch", "version": torch.__version__, "precision": a.dtype, "threads": a.threads, "load_s": load_s}
    with torch.inference_mode():
        image1, n = measure(lambda: model.encode_image(img1), a.budget)
        out.update(image_b1_ms=image1 * 1e3, image_b1_iters=n)
        text77, n = measure(lambda: model.encode_text(tok77, truncate=True), a.budget)
        out.update(text_b1_l77_ms=text77 * 1e3, text_b1_l77_iters=n)
        text12, n = measure(lambda: model.encode_text(tok12, truncate=True), a.budget)
        out.update(text_b1_l12_ms=text12 * 1e3, text_b1_l12_iters=n)
        image8, n = measure(lambda: model.encode_image(img8), a.budget, max_iters=3)
        out.update(image_b8_per_s=a.batch / image8, image_b8_iters=n)
        text8, n = measure(lambda: model.encode_text(tok77b, truncate=True), a.budget)
        out.update(text_b8_l77_per_s=a.batch / text8, text_b8_l77_iters=n)
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
