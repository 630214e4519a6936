"""Run folders: ``config.json``, checkpoints (safetensors + JSON, nothing pickled) and ``--resume``.

A checkpoint holds the model, the Adam moments, the step, the GradScaler and the history,
so a run folder can be shared and resumed safely. Each is written to a temporary folder and
renamed, then ``latest.json`` is replaced atomically: a kill at any moment leaves a usable
checkpoint. Only the newest few are kept, so a run folder stays small.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelError, UsageError
from ..files import atomic_write_text
from .config import TRAJECTORY, TrainConfig

__all__ = ["Resumed", "load_checkpoint", "restore", "resume_run", "save_checkpoint", "write_config"]

_CHECKPOINT_KEEP = 2


def write_config(run_dir: Path, c: TrainConfig) -> None:
    """``config.json``: the run's normalized config (what ``--resume`` compares against)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.json", json.dumps(c.to_json(), indent=1) + "\n")


def _optimizer_to_safetensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors (for safetensors) and JSON-able rest."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_from_safetensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    for idx, values in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(values)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(run_dir: Path, step: int, model: torch.nn.Module, opt: torch.optim.Optimizer,
                    scaler: Any, extra: dict[str, Any]) -> Path:
    """Write ``checkpoints/step-NNNNNNNN`` (model, optimizer, ``state.json``) and point ``latest.json`` at it."""
    from safetensors.torch import save_file

    ckpt_root = run_dir / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step-{step:08d}"
    tmp = ckpt_root / f".tmp-step-{step:08d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    opt_tensors, opt_meta = _optimizer_to_safetensors(opt)
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    state = {"step": step, "optimizer": opt_meta, **extra}
    if scaler is not None:
        state["grad_scaler"] = {k: (float(v) if torch.is_tensor(v) else v) for k, v in scaler.state_dict().items()}
    (tmp / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic_write_text(run_dir / "latest.json", json.dumps({"step": step, "checkpoint": final.name}) + "\n")
    old = sorted(p for p in ckpt_root.iterdir() if p.is_dir() and p.name.startswith("step-"))
    for stale in old[:-_CHECKPOINT_KEEP]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def load_checkpoint(run_dir: Path) -> tuple[Path, dict[str, Any]]:
    """``(checkpoint folder, its state.json)`` of the run's latest checkpoint."""
    latest = run_dir / "latest.json"
    if not latest.is_file():
        raise UsageError(f"--resume: no checkpoint in '{run_dir}' (latest.json missing)")
    info = json.loads(latest.read_text(encoding="utf-8"))
    ckpt = run_dir / "checkpoints" / info["checkpoint"]
    state_path = ckpt / "state.json"
    if not state_path.is_file():
        raise ModelError(f"checkpoint '{ckpt}' is incomplete")
    return ckpt, json.loads(state_path.read_text(encoding="utf-8"))


@dataclasses.dataclass
class Resumed:
    """Where a resumed run continues: its checkpoint, and the config it was saved with."""

    checkpoint: Path
    state: dict[str, Any]
    saved: dict[str, Any]


def resume_run(run_dir: Path, c: TrainConfig, *, pair: bool) -> tuple[TrainConfig, Resumed | None]:
    """Check ``--resume`` (or its absence) against the run folder; returns the config to run and what to resume.

    A resumed run must agree with the saved config on every trajectory field (a field the
    saved run predates had its default); it keeps the run's ``--init`` unless given one.
    """
    if not c.resume:
        if (run_dir / "latest.json").exists():
            raise UsageError(f"run folder '{run_dir}' already has checkpoints: add --resume or choose another --out")
        return c, None
    ckpt_dir, state = load_checkpoint(run_dir)
    saved = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    defaults = TrainConfig(arch=c.arch, scales=c.scales, data=c.data, steps=c.steps).to_json()
    ours = c.to_json()
    for key in TRAJECTORY:
        if key == "loss" and pair:
            continue  # pairs saved "l2" before they said they ignore it
        theirs = saved.get(key, defaults[key])
        if theirs != ours[key]:
            raise UsageError(f"--resume: {key} differs from the run in '{run_dir}' "
                             f"({theirs!r} there, {ours[key]!r} now)")
    if c.init is None:
        c = dataclasses.replace(c, init=saved.get("init"))
    return c, Resumed(ckpt_dir, state, saved)


def restore(resumed: Resumed, model: torch.nn.Module, opt: torch.optim.Optimizer, scaler: Any,
            device: torch.device) -> None:
    """Load the checkpoint's model, optimizer and GradScaler state."""
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(resumed.checkpoint / "model.safetensors"), device=str(device)))
    tensors = load_file(str(resumed.checkpoint / "optimizer.safetensors"), device=str(device))
    _optimizer_from_safetensors(opt, tensors, resumed.state["optimizer"])
    if scaler is not None and resumed.state.get("grad_scaler"):
        scaler.load_state_dict(resumed.state["grad_scaler"])
