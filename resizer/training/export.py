"""``--export``: trained weights into the manifest, with their recipe and their benchmark scores.

The weights go beside the manifest (the package's ``weights/`` by default), so a test
exporting into a temporary manifest never touches the shipped files. Scores come from
``resizer.evaluation.evaluate`` (the official measure, through the manifest just written).
An export is all or nothing: if scoring fails, the files and the manifest are put back.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

from ..devices import hardware_string
from .config import TrainConfig, datasets_root, fmt_scale, training_family

__all__ = ["default_bench_dirs", "export_pair", "export_weights"]

ProgressFn = Callable[[dict[str, Any]], None]
Scores = dict[str, dict[str, dict[str, float]]]


def default_bench_dirs() -> list[Path]:
    """``$RESIZER_DATASETS/bench/set5`` and ``set14`` (those that exist)."""
    root = datasets_root()
    if root is None:
        return []
    return [d for d in (root / "bench" / "set5", root / "bench" / "set14") if d.is_dir()]


def _bench(c: TrainConfig) -> list[Path]:
    return [Path(b) for b in c.bench] if c.bench else default_bench_dirs()


def _manifest(c: TrainConfig) -> Path:
    from ..weights import manifest_path

    manifest = Path(c.manifest) if c.manifest else manifest_path()
    manifest.parent.mkdir(parents=True, exist_ok=True)
    return manifest


def _metrics(psnr: float, ssim: float) -> dict[str, float]:
    return {"psnr": round(float(psnr), 4), "ssim": round(float(ssim), 5)}


def _score(weights_path: Path, c: TrainConfig, bench: Sequence[Path], model: torch.nn.Module,
           device: torch.device) -> tuple[Scores, str]:
    """PSNR/SSIM per set and scale by ``evaluate()`` through the learned method, reading ``weights_path``.

    A family registered after the methods were (no ``--method`` of its own) is scored by
    ``evaluate_network`` on the model in memory instead; the second value says which.
    """
    from ..errors import UsageError
    from ..evaluation import evaluate, evaluate_network
    from ..methods import RunOptions, get_method

    family = training_family(c.arch)
    scores: Scores = {}
    if family.restores:
        return _score_restoration(weights_path, family.name, bench, device), "evaluate_restoration"
    try:
        get_method(family.name)
    except UsageError:
        for r in evaluate_network(model, family, bench, c.scored_scales, device):
            scores.setdefault(r.dataset, {})[f"x{fmt_scale(r.scale)}"] = _metrics(r.psnr, r.ssim)
        return scores, "evaluate_network"
    results = evaluate(bench, list(c.scored_scales), down="matlab-bicubic", up=family.name,
                       options=RunOptions(weights=str(weights_path), device=str(device), precision="fp32"))
    for r in results:
        scores.setdefault(r.dataset, {})[f"x{fmt_scale(r.scale)}"] = _metrics(r.psnr, r.ssim)
    return scores, "evaluate"


def _score_restoration(weights_path: Path, method: str, bench: Sequence[Path], device: torch.device) -> Scores:
    """A restoration family's scores: ``{"set5": {"x1": {"psnr_q10": .., "jpeg_psnr_q10": .., "gain_q10": ..}}}``."""
    from ..evaluation import evaluate_restoration
    from ..methods import RunOptions
    from ..restoration import SCORED_QUALITIES

    scores: Scores = {}
    options = RunOptions(weights=str(weights_path), device=str(device))
    for r in evaluate_restoration(bench, SCORED_QUALITIES, method, options):
        metrics = scores.setdefault(r.dataset, {}).setdefault("x1", {})
        metrics.update({f"psnr_q{r.quality}": round(r.psnr, 4), f"ssim_q{r.quality}": round(r.ssim, 5),
                        f"jpeg_psnr_q{r.quality}": round(r.decoded_psnr, 4), f"gain_q{r.quality}": round(r.gain, 4)})
    return scores


def _recipe(c: TrainConfig, schedule: str, wall_time_s: float, device: torch.device, hardware: str | None,
            segments: Sequence[dict[str, int]]) -> dict[str, Any]:
    return {
        "data": "+".join(Path(d).name for d in c.data), "steps": c.steps, "batch": c.batch, "patch": c.patch,
        "schedule": schedule, "seed": c.seed, "hardware": hardware or hardware_string(device),
        "wall_time_s": round(wall_time_s, 3), "command": c.command or c.to_command(segments),
    }


def export_weights(model: torch.nn.Module, config: TrainConfig, *, wall_time_s: float,
                   device: torch.device | str = "cpu", progress: ProgressFn | None = None,
                   segments: Sequence[dict[str, int]] = (), hardware: str | None = None) -> dict[str, Any]:
    """Write ``NAME.safetensors`` next to the manifest, score it, and upsert its manifest entry."""
    from .. import weights as wapi

    c = config.normalized()
    device = torch.device(device)
    family = training_family(c.arch)
    arch = family.architecture("up")
    manifest = _manifest(c)
    path = manifest.parent / f"{c.export}.safetensors"
    model_config = {**arch.default_config, **c.model_config}
    model.eval()
    # A network that takes the scale as an input (ASDN) serves every scale: an empty list.
    served = [] if family.any_scale else [float(s) for s in c.scales]
    bench = _bench(c)
    scores, scorer = ({}, "none")
    with _restored_on_failure([path]):  # a file the manifest describes is never replaced unscored
        sha256, size = wapi.save_weights(model, path, arch=arch.name, config=model_config, scales=served)
        if bench:
            scores, scorer = _score(path, c, bench, model, device)
    recipe = _recipe(c, _schedule_text(c), wall_time_s, device, hardware, segments)
    recipe = _chained_recipe(recipe, c, segments, c.init, manifest)
    fields = {
        "name": c.export, "arch": arch.name, "family": arch.family, "task": arch.task,
        "config": model_config, "scales": [_scale_value(s) for s in served], "file": path.name,
        "sha256": sha256, "size": size, "params": wapi.count_parameters(model),
        "license": c.license, "source": "bundled", "recipe": recipe, "scores": scores,
    }
    wapi.upsert_manifest_entry(wapi.WeightsEntry(**fields), manifest_path=manifest)
    fields["scored_by"] = scorer
    _emit(progress, {"event": "export", "name": c.export, "file": str(path), "manifest": str(manifest),
                     "scores": scores, "scored_by": scorer})
    return fields


def export_pair(model: torch.nn.Module, config: TrainConfig, *, wall_time_s: float,
                device: torch.device | str = "cpu", progress: ProgressFn | None = None,
                segments: Sequence[dict[str, int]] = (), hardware: str | None = None) -> dict[str, Any]:
    """Write a trained pair as ``NAME-down`` and ``NAME-up`` (files and manifest entries), then score it.

    The scores are the round trip (the pair's thumbnail, stored as 8 bits, restored by its
    upscaler) measured by ``evaluate()`` against the manifest just written, plus
    ``thumbnail_psnr``: how close the thumbnail stays to the MATLAB-bicubic one. Both
    entries carry the same recipe and scores.
    """
    from .. import weights as wapi

    c = config.normalized()
    device = torch.device(device)
    family = training_family(c.arch)
    manifest = _manifest(c)
    scale = float(c.scales[0])
    model.eval()
    recipe = _recipe(c, _schedule_text(c, pair=True) + _loss_weights_text(model, c), wall_time_s, device,
                     hardware, segments)
    recipe = _chained_recipe(recipe, c, segments, f"{c.init}-up.safetensors" if c.init else None, manifest)
    # Scoring reads the pair through the manifest, so files and entries go in first; if anything
    # fails, the manifest and both files are put back as they were (nothing unscored is left).
    paths = {part: manifest.parent / f"{c.export}-{part}.safetensors" for part in ("down", "up")}
    use = _kept_use(manifest, [path.stem for path in paths.values()])
    entries = []
    with _restored_on_failure([manifest, *paths.values()]):
        for part, path in paths.items():
            architecture, net = family.architecture(part), getattr(model, part)
            config = {**architecture.default_config, **dict(c.model_config.get(part) or {}), "scale": int(scale)}
            sha256, size = wapi.save_weights(net, path, arch=architecture.name, config=config, scales=[scale])
            entries.append(wapi.WeightsEntry(
                name=path.stem, arch=architecture.name, family=architecture.family, task=architecture.task,
                config=config, scales=[scale], file=path.name, sha256=sha256, size=size,
                params=wapi.count_parameters(net), license=c.license, recipe=recipe, scores={}, source="bundled",
                use=use))
        for entry in entries:
            wapi.upsert_manifest_entry(entry, manifest_path=manifest)
        scores = _score_pair(c, manifest, family.name, scale, device, [e.name for e in entries], use)
    for entry in entries:
        wapi.upsert_manifest_entry(dataclasses.replace(entry, scores=scores), manifest_path=manifest)
    _emit(progress, {"event": "export", "name": c.export, "file": str(manifest.parent / entries[-1].file),
                     "manifest": str(manifest), "scores": scores, "scored_by": "evaluate"})
    return {"entries": [e.name for e in entries], "scores": scores}


def _kept_use(manifest: Path, names: Sequence[str]) -> str:
    """The ``use`` of the entries an export replaces (an encode-only pair stays one), ``"view"`` for new ones."""
    from .. import weights as wapi

    if not manifest.exists():
        return "view"
    uses = {e.use for e in wapi.read_manifest(manifest) if e.name in names}
    return "encode" if "encode" in uses else "view"


def _score_pair(c: TrainConfig, manifest: Path, family: str, scale: float, device: torch.device,
                names: Sequence[str], use: str = "view") -> Scores:
    """Round-trip PSNR/SSIM and ``thumbnail_psnr`` per bench set, by ``evaluate()`` of the pair ``names``.

    ``evaluate`` picks a family's entry by scale, so it reads a copy of ``manifest`` where the
    exported pair is the family's only entry: a pair exported under a new name beside the
    shipped one is scored as itself, not as its name's sort order would mix the halves. It runs
    as its ``use`` runs (an encode-only pair as ``resizer encode`` does; ``down`` would refuse it).
    """
    from ..evaluation import evaluate
    from ..methods import RunOptions

    bench = _bench(c)
    scores: Scores = {}
    if not bench:
        return scores
    with _pair_alone(manifest, family, names):
        fp32 = RunOptions(device=str(device), precision="fp32", use=use)  # a manifest's scores are fp32 ones
        for r in evaluate(bench, [scale], down=family, up=family, options=fp32):
            metrics = _metrics(r.psnr, r.ssim)
            if r.lr_psnr is not None:
                metrics["thumbnail_psnr"] = round(float(r.lr_psnr), 4)
            scores.setdefault(r.dataset, {})[f"x{fmt_scale(r.scale)}"] = metrics
    return scores


@contextlib.contextmanager
def _pair_alone(manifest: Path, family: str, names: Sequence[str]) -> Iterator[Path]:
    """Within the block the active manifest is ``manifest`` less ``family``'s other entries.

    The copy lies beside ``manifest`` (its ``file`` names stay valid) and is removed after.
    """
    import json
    import os
    import tempfile

    from .. import weights as wapi

    data = json.loads(manifest.read_text(encoding="utf-8"))
    kept = [e for e in data if e.get("family") != family or e.get("name") in names]
    fd, name = tempfile.mkstemp(prefix=".scoring-", suffix=".json", dir=manifest.parent)
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(kept, out)
        with wapi.manifest_override(path):
            yield path
    finally:
        path.unlink(missing_ok=True)


def _chained_recipe(recipe: dict[str, Any], c: TrainConfig, segments: Sequence[dict[str, int]],
                    init: str | None, manifest: Path) -> dict[str, Any]:
    """A run that started from a shipped file (``--init weights/NAME...``) continues that file's recipe.

    The earlier recipe's command comes first (it writes the file this run starts from), then
    this run's; steps and wall time add up. Without such an ``--init`` the recipe is unchanged.
    Recorded commands export to the bundled ``weights/``, so this run's ``--init`` is written
    as ``weights/NAME`` wherever the manifest it was trained against lives.
    """
    from .. import weights as wapi

    if not init or not manifest.exists():
        return recipe
    path = Path(init)
    if path.resolve().parent != manifest.parent.resolve():
        return recipe
    prior = next((e.recipe for e in wapi.read_manifest(manifest) if e.file == path.name), None)
    if not prior:
        return recipe
    if not c.command:
        recipe = {**recipe, "command": dataclasses.replace(c, init=f"weights/{Path(c.init).name}").to_command(segments)}
    return {**recipe, "steps": int(prior["steps"]) + int(recipe["steps"]),
            "schedule": f"{prior['schedule']}; then {recipe['schedule']}",
            "wall_time_s": round(float(prior["wall_time_s"]) + float(recipe["wall_time_s"]), 3),
            "hardware": recipe["hardware"] if prior["hardware"] == recipe["hardware"]
            else f"{prior['hardware']}; then {recipe['hardware']}",
            "command": f"{prior['command']} && {recipe['command']}"}


@contextlib.contextmanager
def _restored_on_failure(paths: Sequence[Path]) -> Iterator[None]:
    """Put ``paths`` back as they were (or remove them) if the block fails: an export is all or nothing."""
    before = {p: (p.read_bytes() if p.exists() else None) for p in paths}
    try:
        yield
    except BaseException:
        for path, data in before.items():
            if data is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(data)
        raise


def _loss_weights_text(model: torch.nn.Module, c: TrainConfig) -> str:
    weights = model.down.pair_loss_weights(**c.loss_weights)
    if dataclasses.is_dataclass(weights):
        items = dataclasses.asdict(weights).items()
        return "; joint loss: L1 + " + ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in items)
    return ""


def _scale_value(s: float) -> int | float:
    return int(s) if float(s).is_integer() else float(s)


def _schedule_text(c: TrainConfig, pair: bool = False) -> str:
    """The optimiser, loss and schedule in words (a pair's loss is its joint objective, said separately)."""
    loss = "" if pair else f"{(c.loss or 'l2').upper()} loss, "
    warm = f", {c.warmup} warmup steps" if c.warmup else ""
    clip = f", grad-norm clip {c.clip:g}" if c.clip else ""
    if c.schedule == "cosine":
        sched = f"cosine {c.lr:g} -> {c.lr * c.min_lr:g}"
    else:
        sched = f"step x{c.gamma:g} every {c.decay_every or max(c.steps // 3, 1)} steps from {c.lr:g}"
    codec = (f", {c.codec_share:g} of batches through {c.codec} at quality {c.codec_quality[0]}-{c.codec_quality[1]}"
             if c.codec else "")
    if c.codec and training_family(c.arch).restores:  # a restoration network: every patch goes through the codec
        codec = f", every patch through {c.codec} at quality {c.codec_quality[0]}-{c.codec_quality[1]} (luma restored)"
    elif c.codec_joint:
        codec += (" (both networks, through a differentiable JPEG" +
                  (f", rate weight {c.codec_rate:g})" if c.codec_rate else ")"))
    elif c.codec:
        codec += " (upscaler only)"
    return f"Adam, {loss}{sched}{warm}{clip}{codec}"


def _emit(progress: ProgressFn | None, event: dict[str, Any]) -> None:
    if progress is not None:
        progress(event)
