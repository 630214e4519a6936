"""``resizer train``: a thin layer over :func:`resizer.training.train`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any, List, Optional

import typer

from .app import DebugOpt, JsonOpt, QuietOpt, app, fail_usage, run_api, stderr_console


@app.command("train")
def train_command(
    arch: Annotated[str, typer.Argument(help="Architecture to train (see 'resizer models').")],
    scale: Annotated[List[float], typer.Option("--scale", "-s", help="Scale factor; repeat for a multi-scale model.")],
    data: Annotated[List[Path], typer.Option("--data", help="Folder of HR training images; repeatable.")],
    steps: Annotated[int, typer.Option("--steps", min=0, help="Total optimizer steps of the run.")],
    val: Annotated[Optional[List[Path]], typer.Option("--val", help="Folder scored (PSNR, eval protocol) while training; repeatable.")] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Patches per step.")] = 16,
    patch: Annotated[int, typer.Option("--patch", min=8, help="HR patch side in pixels.")] = 48,
    lr: Annotated[float, typer.Option("--lr", help="Peak Adam learning rate.")] = 1e-3,
    loss: Annotated[Optional[str], typer.Option("--loss", help="l1 or l2 (default l2); single networks only: a down/up pair trains on its joint objective, see --loss-weight.")] = None,
    schedule: Annotated[str, typer.Option("--schedule", help="cosine or step.")] = "cosine",
    min_lr: Annotated[float, typer.Option("--min-lr", help="cosine: final learning rate as a fraction of --lr.")] = 0.01,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Linear warm-up steps.")] = 0,
    decay_every: Annotated[int, typer.Option("--decay-every", min=0, help="step: steps between decays (0 = steps/3).")] = 0,
    gamma: Annotated[float, typer.Option("--gamma", help="step: learning-rate factor at each decay.")] = 0.1,
    clip: Annotated[float, typer.Option("--clip", min=0, help="Max gradient norm; 0 = off.")] = 0.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the initialisation and the patch stream.")] = 0,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    precision: Annotated[str, typer.Option("--precision", help="auto (bf16/fp16 on CUDA, fp32 on CPU), fp32, bf16 or fp16.")] = "auto",
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads for torch (default: torch's).")] = None,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Threads preparing batches ahead; 0 = none.")] = 0,
    val_every: Annotated[int, typer.Option("--val-every", min=0, help="Validate every K steps; 0 = at the end only.")] = 0,
    checkpoint_every: Annotated[int, typer.Option("--checkpoint-every", min=0, help="Checkpoint every K steps.")] = 1000,
    stop_at: Annotated[Optional[int], typer.Option("--stop-at", min=0, help="Checkpoint and stop at this step (resume later).")] = None,
    log_every: Annotated[int, typer.Option("--log-every", min=1, help="Steps per logged loss average.")] = 100,
    out: Annotated[Optional[Path], typer.Option("--out", help="Run folder (default runs/ARCH-xS).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the run folder's latest checkpoint.")] = False,
    init: Annotated[Optional[Path], typer.Option("--init", help="Start from a .safetensors weights file.")] = None,
    config: Annotated[Optional[str], typer.Option("--config", help="Architecture options as JSON, e.g. '{\"depth\": 10}'.")] = None,
    export: Annotated[Optional[str], typer.Option("--export", help="At the end, write weights/NAME.safetensors and its manifest entry.")] = None,
    manifest: Annotated[Optional[Path], typer.Option("--manifest", help="Manifest --export updates (default: the bundled one).")] = None,
    bench: Annotated[Optional[List[Path]], typer.Option("--bench", help="Folders scored into the manifest by --export; repeatable (default $RESIZER_DATASETS/bench/set5, set14).")] = None,
    eval_scale: Annotated[Optional[List[float]], typer.Option("--eval-scale", help="Scale validated and scored into the manifest; repeatable (default: the training scales).")] = None,
    loss_weight: Annotated[Optional[List[str]], typer.Option("--loss-weight", help="A down/up pair's joint-loss term, NAME=VALUE (e.g. offset=0.001); repeatable.")] = None,
    codec: Annotated[Optional[str], typer.Option("--codec", help="A pair: also train its upscaler on codec-decoded thumbnails (jpeg, webp, avif, jpeg2000).")] = None,
    codec_quality: Annotated[str, typer.Option("--codec-quality", help="With --codec: qualities LOW-HIGH, drawn per patch.")] = "20-95",
    codec_share: Annotated[float, typer.Option("--codec-share", help="With --codec: the share of batches that go through the codec.")] = 0.5,
    codec_joint: Annotated[bool, typer.Option("--codec-joint", help="With --codec jpeg: train the downscaler through the codec too (a differentiable JPEG gives its gradient).")] = False,
    codec_rate: Annotated[float, typer.Option("--codec-rate", help="With --codec-joint: weight of the bits-per-pixel proxy in the loss.")] = 0.0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Train an upscaler on random patches of HR images; checkpoint, resume, export."""
    from ..training import TrainConfig, train

    model_config: dict[str, Any] = {}
    if config:
        try:
            model_config = json.loads(config)
        except json.JSONDecodeError as exc:
            fail_usage(f"--config is not valid JSON: {exc}")
        if not isinstance(model_config, dict):
            fail_usage("--config must be a JSON object")
    loss_weights: dict[str, Any] = {}
    for item in loss_weight or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail_usage(f"--loss-weight takes NAME=VALUE, not {item!r}")
        try:
            loss_weights[key.strip()] = json.loads(value.strip().lower())
        except json.JSONDecodeError:
            fail_usage(f"--loss-weight {item!r}: {value!r} is not a number or true/false")
    low, sep, high = codec_quality.partition("-")
    try:
        qualities = (int(low), int(high) if sep else int(low))
    except ValueError:
        fail_usage(f"--codec-quality takes LOW-HIGH such as 20-95, not {codec_quality!r}")
    cfg = TrainConfig(
        arch=arch, scales=tuple(scale), data=tuple(str(d) for d in data), steps=steps,
        val=tuple(str(v) for v in val or ()), batch=batch, patch=patch, lr=lr, loss=loss, schedule=schedule,
        min_lr=min_lr, warmup=warmup, decay_every=decay_every, gamma=gamma, clip=clip, seed=seed,
        device=device, precision=precision, threads=threads, workers=workers, val_every=val_every,
        checkpoint_every=checkpoint_every, log_every=log_every, stop_at=stop_at, out=str(out) if out else None, resume=resume,
        init=str(init) if init else None, export=export, manifest=str(manifest) if manifest else None,
        bench=tuple(str(b) for b in bench or ()), eval_scales=tuple(eval_scale or ()), model_config=model_config,
        loss_weights=loss_weights, codec=codec, codec_quality=qualities, codec_share=codec_share,
        codec_joint=codec_joint, codec_rate=codec_rate,
    )
    console = stderr_console()
    started = time.perf_counter()

    def progress(event: dict[str, Any]) -> None:
        if json_out:
            print(json.dumps(event), flush=True)
            return
        if quiet:
            return
        kind = event["event"]
        if kind == "start":
            console.print(f"training {arch} x{'/'.join(f'{s:g}' for s in scale)} on {event['images']} images, "
                          f"{event['hardware']} ({event['device']}); run folder {event['run_dir']}; "
                          f"from step {event['step']} to {event['steps']}")
        elif kind == "step":
            rate = event["steps_per_s"]
            eta = (steps - event["step"]) / rate if rate > 0 else 0
            console.print(f"step {event['step']}/{steps}  loss {event['loss']:.6f}  lr {event['lr']:.3g}  "
                          f"{rate:.2f} step/s  eta {eta / 60:.0f} min")
        elif kind == "val":
            scores = "  ".join(f"{k} {v:.2f} dB" for k, v in event["psnr"].items())
            console.print(f"val at step {event['step']}: {scores}")
        elif kind == "checkpoint":
            console.print(f"checkpoint {event['path']}")
        elif kind == "export":
            console.print(f"exported {event['name']} -> {event['file']} ({event['manifest']}): "
                          f"{json.dumps(event['scores'])}")
        elif kind == "done":
            what = "stopped (resume with --resume)" if event["stopped"] else "done"
            console.print(f"{what} at step {event['step']} in {time.perf_counter() - started:.0f} s")
        sys.stderr.flush()

    result = run_api(lambda: train(cfg, progress=progress), debug=debug)
    if result.stopped:
        raise typer.Exit(130)

