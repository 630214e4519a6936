"""The training loop: ``train(TrainConfig(...)) -> TrainResult``, the learning-rate schedule, validation.

The loop knows nothing of model kinds: the objective (chosen once from the family, see
:mod:`.objectives`) builds the network(s) and turns a batch into a loss. A batch and the
learning rate are pure functions of the step, so a resumed run is bit-identical to an
uninterrupted one. Device-agnostic: fp32 on CPU; on CUDA ``torch.autocast`` in bf16 (or
fp16 with a ``GradScaler``) for ``--precision auto``/``bf16``/``fp16``. SIGINT/SIGTERM
finish the current step, write a checkpoint and return (``TrainResult.stopped``).
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..devices import hardware_string, resolve_device, resolve_precision
from ..errors import ResizerError
from ..models import ModelFamily
from .checkpoints import Resumed, restore, resume_run, save_checkpoint, write_config
from .config import TrainConfig, check_options, fmt_scale, training_family
from .data import PatchSampler, list_images, load_training_images
from .objectives import Objective, select_objective

__all__ = ["TrainResult", "learning_rate", "train", "validate"]

ProgressFn = Callable[[dict[str, Any]], None]


@dataclass
class TrainResult:
    """What a run did. ``history`` holds the logged steps and validations (also in log.jsonl)."""

    run_dir: Path
    step: int
    steps: int
    loss_first: float | None
    loss_last: float | None
    history: list[dict[str, Any]]
    wall_time_s: float
    steps_per_s: float
    stopped: bool = False  # by SIGINT/SIGTERM (``step < steps`` also after --stop-at)
    val: dict[str, float] = field(default_factory=dict)  # "set5/x3" -> PSNR (last validation)
    export: dict[str, Any] | None = None  # the manifest entry written by --export


def learning_rate(config: TrainConfig, step: int) -> float:
    """The learning rate at ``step`` (0-based): a pure function, so resuming needs no state."""
    base = config.lr
    if config.warmup and step < config.warmup:
        return base * (step + 1) / config.warmup
    if config.schedule == "step":
        every = config.decay_every or max(config.steps // 3, 1)
        return base * config.gamma ** (step // every)
    span = max(config.steps - config.warmup, 1)
    t = min(max(step - config.warmup, 0) / span, 1.0)
    low = base * config.min_lr
    return low + (base - low) * 0.5 * (1.0 + math.cos(math.pi * t))


def validate(model: torch.nn.Module, family: ModelFamily, folders: Sequence[str | Path], scales: Sequence[float],
             device: torch.device | str = "cpu") -> dict[str, dict[str, float]]:
    """``{"set5/x3": {"psnr": .., "ssim": ..}}``: the benchmark protocol on ``model`` in memory.

    For choosing between checkpoints while training (``resizer.evaluation.evaluate_network``);
    the numbers recorded in the manifest come from ``resizer.evaluation.evaluate``.
    """
    from ..evaluation import evaluate_network

    results = evaluate_network(model, family, [Path(f) for f in folders], scales, device)
    return {f"{r.dataset}/x{fmt_scale(r.scale)}": {"psnr": r.psnr, "ssim": r.ssim} for r in results}


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """``resolve_precision`` (auto: bf16/fp16 on CUDA, fp32 on CPU; CPU refuses half); MPS trains in fp32."""
    return None if device.type == "mps" else resolve_precision(precision, device)


class _StopFlag:
    """Turns SIGINT/SIGTERM into a request to checkpoint and stop (main thread only)."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_StopFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:  # noqa: ARG002
        if self.requested:  # second signal: give up immediately
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


class _Batches:
    """``batches(k)``: batch ``k`` of the sampler, prepared ``workers`` threads ahead (or in the loop)."""

    def __init__(self, sampler: PatchSampler, workers: int, end: int) -> None:
        self.sampler, self.workers, self.end = sampler, workers, end
        self.pool = ThreadPoolExecutor(max_workers=workers) if workers > 0 else None
        self.pending: dict[int, Any] = {}

    def __call__(self, k: int) -> tuple[np.ndarray, float]:
        if self.pool is None:
            return self.sampler.batch_at(k)
        for ahead in range(k, min(k + 2 * self.workers, self.end)):
            if ahead not in self.pending:
                self.pending[ahead] = self.pool.submit(self.sampler.batch_at, ahead)
        return self.pending.pop(k).result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)


class _Run:
    """A run's state and bookkeeping: step, history and log, loss windows, checkpoints, validations."""

    def __init__(self, c: TrainConfig, run_dir: Path, objective: Objective, opt: torch.optim.Optimizer,
                 scaler: Any, device: torch.device, progress: ProgressFn | None, resumed: Resumed | None) -> None:
        self.c, self.run_dir, self.objective, self.opt, self.scaler = c, run_dir, objective, opt, scaler
        self.device, self.progress = device, progress
        self.step, self.prior_wall = 0, 0.0
        self.segments: list[dict[str, int]] = [{"steps": c.steps}]
        self.history: list[dict[str, Any]] = []
        if resumed is not None:
            restore(resumed, objective.model, opt, scaler, device)
            state = resumed.state
            self.step = int(state["step"])
            self.history = list(state.get("history", []))
            self.prior_wall = float(state.get("wall_time_s", 0.0))
            self.segments = [dict(x) for x in state.get("segments", [])] or [{"steps": int(resumed.saved["steps"])}]
            if self.segments[-1]["steps"] != c.steps:  # the run is extended or shortened: remember where
                self.segments[-1]["until"] = self.step
                self.segments.append({"steps": c.steps})
        write_config(run_dir, c)
        self.log_path = run_dir / "log.jsonl"
        self.val_dirs = [Path(v) for v in c.val]
        self.start_step, self.t0 = self.step, time.perf_counter()
        self.window: list[float] = []
        self.first_window: list[float] = []
        self.last_val: dict[str, float] = {}

    def emit(self, event: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress(event)

    def log(self, entry: dict[str, Any]) -> None:
        self.history.append(entry)
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
        self.emit(entry)

    def elapsed(self) -> float:
        return self.prior_wall + (time.perf_counter() - self.t0)

    def rate(self) -> float:
        return (self.step - self.start_step) / max(time.perf_counter() - self.t0, 1e-9)

    def checkpoint(self) -> None:
        path = save_checkpoint(self.run_dir, self.step, self.objective.model, self.opt, self.scaler,
                               {"wall_time_s": self.elapsed(), "history": self.history, "config": self.c.to_json(),
                                "segments": self.segments})
        self.emit({"event": "checkpoint", "step": self.step, "path": str(path)})

    def validation(self) -> None:
        scores = validate(self.objective.model, self.objective.family, self.val_dirs, self.c.scored_scales, self.device)
        self.last_val = {k: round(v["psnr"], 4) for k, v in scores.items()}
        self.log({"event": "val", "step": self.step, "psnr": self.last_val, "wall_time_s": round(self.elapsed(), 1)})

    def stepped(self, value: float) -> None:
        """After an optimizer step with loss ``value``: log, validate and checkpoint on schedule."""
        c = self.c
        self.step += 1
        self.window.append(value)
        if self.step - self.start_step <= c.log_every:
            self.first_window.append(value)
        if self.step % c.log_every == 0 or self.step == c.steps:
            self.log({"event": "step", "step": self.step, "loss": sum(self.window) / len(self.window),
                      "lr": learning_rate(c, self.step - 1), "steps_per_s": self.rate(),
                      "wall_time_s": round(self.elapsed(), 1)})
            self.window = []
        if self.val_dirs and c.val_every and self.step % c.val_every == 0 and self.step < c.steps:
            self.validation()
        if c.checkpoint_every and self.step % c.checkpoint_every == 0 and self.step < c.steps:
            self.checkpoint()

    def finished(self) -> None:
        """At the end (or a stop): the last validation unless just done, and a checkpoint of any new step."""
        last = self.history[-1] if self.history else {}
        if self.val_dirs and self.step == self.c.steps and (last.get("event") != "val" or last.get("step") != self.step):
            self.validation()
        if self.step > self.start_step or not (self.run_dir / "latest.json").exists():
            self.checkpoint()

    def result(self, stopped: bool) -> TrainResult:
        step_losses = [h["loss"] for h in self.history if h.get("event") == "step"]
        first = (sum(self.first_window) / len(self.first_window)) if self.first_window else None
        last = (sum(self.window) / len(self.window)) if self.window else None
        return TrainResult(
            run_dir=self.run_dir, step=self.step, steps=self.c.steps,
            loss_first=first if first is not None else (step_losses[0] if step_losses else None),
            loss_last=last if last is not None else (step_losses[-1] if step_losses else None),
            history=self.history, wall_time_s=self.elapsed(), steps_per_s=self.rate(), stopped=stopped,
            val=self.last_val)


def _optimizer_step(loss: torch.Tensor, model: torch.nn.Module, opt: torch.optim.Optimizer, scaler: Any,
                    clip: float) -> None:
    opt.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        if clip:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()


def _steps(run: _Run, sampler: PatchSampler) -> bool:
    """Train until ``steps`` (or ``--stop-at``); returns whether a signal stopped it."""
    c, objective, model = run.c, run.objective, run.objective.model
    end = c.steps if c.stop_at is None else min(c.steps, c.stop_at)
    batches = _Batches(sampler, c.workers, end)
    stopped = False
    try:
        with _StopFlag() as stop:
            while run.step < end:
                if stop.requested:
                    stopped = True
                    break
                for group in run.opt.param_groups:
                    group["lr"] = learning_rate(c, run.step)
                hr_np, scale = batches(run.step)
                hr = torch.from_numpy(hr_np).to(device=run.device, non_blocking=True).float().div_(255.0)
                loss, _terms = objective(hr, scale, run.step)
                _optimizer_step(loss, model, run.opt, run.scaler, c.clip)
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise ResizerError(f"loss became {value} at step {run.step}; lower --lr or add --clip")
                run.stepped(value)
            run.finished()
    finally:
        batches.close()
    return stopped


def train(config: TrainConfig, progress: ProgressFn | None = None) -> TrainResult:
    """Train ``config.arch`` on random patches of ``config.data``; see the module docstring.

    ``progress`` receives event dicts: ``{"event": "start"|"step"|"val"|"checkpoint"|
    "export"|"done", "step": .., ...}``. Raises ``UsageError`` for bad requests
    (unknown arch, empty folder, unsupported scale) before any work is done.
    """
    c = config.normalized()
    check_options(c)
    family = training_family(c.arch)
    objective, c = select_objective(c, family)
    if c.threads:
        torch.set_num_threads(int(c.threads))
    device = resolve_device(c.device)
    amp_dtype = _autocast_dtype(c.precision, device)
    hardware = hardware_string(device)  # now: evaluation may change torch's thread count later
    run_dir = Path(c.out or f"runs/{c.arch}-x{'-'.join(fmt_scale(s) for s in c.scales)}")
    c, resumed = resume_run(run_dir, c, pair=family.is_pair)
    objective.config = c

    torch.manual_seed(c.seed)
    model = objective.build()
    objective.autocast = lambda: torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)
    sampler = PatchSampler(load_training_images(c.data, objective.data_color), c.patch, c.scales, c.batch, c.seed)
    for v in c.val:
        list_images(Path(v))  # fail early on a bad --val
    if c.init and not c.resume:
        objective.init_from(c.init)
    model.to(device)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=c.lr)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    run = _Run(c, run_dir, objective, opt, scaler, device, progress, resumed)
    run.emit({"event": "start", "step": run.step, "steps": c.steps, "device": str(device),
              "images": len(sampler.images), "run_dir": str(run_dir), "hardware": hardware})
    stopped = _steps(run, sampler)
    result = run.result(stopped)
    if c.export and run.step == c.steps:
        result.export = objective.export(c, wall_time_s=result.wall_time_s, device=device, progress=progress,
                                         segments=run.segments, hardware=hardware)
    run.emit({"event": "done", "step": run.step, "stopped": stopped, "wall_time_s": round(result.wall_time_s, 1),
              "steps_per_s": result.steps_per_s, "run_dir": str(run_dir)})
    return result
