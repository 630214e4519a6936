"""What torch.compile costs and gains for one bundled network on fixed-size tiles (CPU).

    python benchmarks/bench_compile.py dair 2                      # default inductor
    python benchmarks/bench_compile.py dair 2 --freezing --mode max-autotune-no-cudagraphs

Prints the eager time per tile, the compile time (first call), the compiled time per
tile (best of --runs) and the break-even: how many tiles a run needs before compiling
pays for itself. Tiles are the engine's default CPU size, so a real run would reuse the
compiled graph (``dynamic=False``: one shape).
"""

from __future__ import annotations

import argparse
import json
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("family")
    parser.add_argument("scale", type=float)
    parser.add_argument("--tile", type=int, default=128, help="input tile side, halo included")
    parser.add_argument("--mode", default="default")
    parser.add_argument("--freezing", action="store_true", help="torch._inductor.config.freezing = True")
    parser.add_argument("--cpp-wrapper", action="store_true", help="torch._inductor.config.cpp_wrapper = True")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)

    import torch
    import torch._inductor.config as inductor

    from resizer.learned import inference_model
    from resizer.weights import load

    inductor.freezing = args.freezing
    inductor.cpp_wrapper = args.cpp_wrapper
    model = inference_model(load(args.family, args.scale).model, torch.device("cpu"))
    channels = 1 if model.color == "y" else 3
    x = torch.rand(1, channels, args.tile, args.tile)

    def best(fn) -> float:
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return min(times)

    with torch.inference_mode():
        eager = best(lambda: model(x, args.scale))
        compiled = torch.compile(lambda t: model(t, args.scale), mode=args.mode, dynamic=False)
        started = time.perf_counter()
        compiled(x)
        compile_s = time.perf_counter() - started
        fast = best(lambda: compiled(x))
        diff = (compiled(x) - model(x, args.scale)).abs().max().item()
    gain = eager - fast
    print(json.dumps({"family": args.family, "scale": args.scale, "tile": args.tile, "mode": args.mode,
                      "freezing": args.freezing, "cpp_wrapper": args.cpp_wrapper, "eager_s": round(eager, 4),
                      "compile_s": round(compile_s, 1), "compiled_s": round(fast, 4),
                      "speedup": round(eager / fast, 3), "max_abs_diff": diff,
                      "break_even_tiles": round(compile_s / gain) if gain > 0 else None}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
