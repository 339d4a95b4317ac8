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
    """Median seconds over up to max_iters runs after one warm-up; a first run longer than the budget is the
    answer itself (one cold run: at that length warm-up effects are noise). Same rule as native-bench.ts."""
    t = time.perf_counter(); fn(); first = time.perf_counter() - t
    if first >= budget_s:
        return first, 1
    iters = max(1, min(max_iters, int(budget_s / max(first, 1e-6))))
    times = []
    for _ in range(iters):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return statistics.median(times), len(times)


def image_flops(cfg):
    """Multiply-adds x 2 of one image through the ConvNeXt trunk and head (dominant terms)."""
    v = cfg["vision_cfg"]; S = v["image_size"]
    depths, dims, _ = ARCHS_OF(v)
    flops, hw = 2 * (S // 4) ** 2 * 48 * dims[0], (S // 4) ** 2
    for s in range(4):
        if s:
            hw //= 4
            flops += 2 * hw * 4 * dims[s - 1] * dims[s]
        flops += depths[s] * hw * (2 * 49 * dims[s] + 2 * 2 * 4 * dims[s] * dims[s])
    return flops


def text_flops(cfg, length):
    t = cfg["text_cfg"]; w = t["width"]
    return t["layers"] * length * (2 * 12 * w * w + 4 * length * w)


def linear_gflops(dtype):
    """Speed of one representative matmul (a stage-3 ConvNeXt fc1) in this dtype, to skip hopeless runs."""
    x = torch.randn(256, 1536).to(dtype); w = torch.randn(6144, 1536).to(dtype)
    torch.nn.functional.linear(x, w)
    t = time.perf_counter(); torch.nn.functional.linear(x, w); s = time.perf_counter() - t
    return 2 * 256 * 1536 * 6144 / s / 1e9


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
    p.add_argument("--max-seconds", type=float, default=240.0,
                   help="skip a measurement whose estimated single run is longer (PyTorch bf16 on CPUs without AVX-512 BF16)")
    p.add_argument("--reference", default=os.path.join(HERE, "..", "..", "shared", "reference", "clip_reference.py"))
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    ref = reference_module(a.reference)
    global ARCHS_OF
    ARCHS_OF = lambda v: tuple(((v.get("timm_model_kwargs") or {}).get(k, d) for k, d in
                                zip(("depths", "dims", "norm_eps"), ref.ARCHS[v["timm_model_name"]])))
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
    gflops = linear_gflops(dtype)
    out["matmul_gflops"] = gflops
    m = cfg["model_cfg"]

    def timed(key, fn, seconds_estimate, batch=None, max_iters=5):
        if seconds_estimate > a.max_seconds:
            out[key + "_skipped_est_s"] = seconds_estimate
            return
        s, n = measure(fn, a.budget, max_iters)
        if batch is None:
            out[key + "_ms"], out[key + "_iters"] = s * 1e3, n
        else:
            out[key + "_per_s"], out[key + "_iters"] = batch / s, n

    est = lambda flops: flops / (gflops * 1e9)
    with torch.inference_mode():
        timed("image_b1", lambda: model.encode_image(img1), est(image_flops(m)))
        timed("text_b1_l77", lambda: model.encode_text(tok77, truncate=True), est(text_flops(m, 77)))
        timed("text_b1_l12", lambda: model.encode_text(tok12, truncate=True), est(text_flops(m, 12)))
        timed("image_b8", lambda: model.encode_image(img8), est(a.batch * image_flops(m)), a.batch, 3)
        timed("text_b8_l77", lambda: model.encode_text(tok77b, truncate=True), est(a.batch * text_flops(m, 77)), a.batch)
        # The same batch of 7-35-token texts as native-bench.ts's (open_clip runs every row to the context length).
        tok_mixed = torch.cat([tokens_with_end_at(1, 6 + 4 * (r % 8)) for r in range(a.batch)])
        timed("text_b8_mixed", lambda: model.encode_text(tok_mixed, truncate=True), est(a.batch * text_flops(m, 77)), a.batch)
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
