"""int8 inference on the CPU: convolutions in 8 bits through oneDNN (VNNI), quantized at load.

The weights stay fp32 files. :func:`quantized_copy` gives a copy of a network whose
``nn.Conv2d`` layers also hold their weights as int8 (symmetric, per output channel).
While :func:`int8_mode` is on in the calling thread, such a layer quantizes its input
(uint8, per tensor, in a fixed range: :func:`calibrate` measures it on training photos,
the manifest keeps it beside the entry's int8 measurements) and runs oneDNN's int8
convolution with an fp32 result. A fixed range quantizes a tile exactly as the whole
image, so tiled == whole holds. Everything a model marks with
:func:`resizer.models.base.fp32_section` (the bicubic base, the residual add, the last
layer, the resamplers) turns int8 off again, exactly as it turns autocast off, so the
precision plan of the other low precisions holds for int8 too.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import warnings
from typing import Iterator, Mapping, Sequence

import torch
from torch import nn

__all__ = ["Int8Conv2d", "calibrate", "calibration_scale", "int8_active", "int8_available", "int8_mode",
           "int8_suspended", "quantized_copy"]

_STATE = threading.local()


def int8_available() -> bool:
    """Whether this torch build has oneDNN's int8 convolution (the CPU path int8 runs on)."""
    if not torch.backends.mkldnn.is_available():
        return False
    ops = getattr(torch.ops, "onednn", None)
    try:
        return ops is not None and hasattr(ops, "qconv2d_pointwise") and hasattr(ops, "qconv_prepack")
    except (AttributeError, RuntimeError):
        return False


def int8_active() -> bool:
    """True while the calling thread runs networks in int8 (and is not in an fp32 section)."""
    return getattr(_STATE, "on", False)


@contextlib.contextmanager
def _flag(on: bool) -> Iterator[None]:
    before = int8_active()
    _STATE.on = on
    try:
        yield
    finally:
        _STATE.on = before


def int8_mode() -> contextlib.AbstractContextManager[None]:
    """int8 on in this thread (per thread, like autocast: every CPU tile worker enters it)."""
    return _flag(True)


def int8_suspended() -> contextlib.AbstractContextManager[None]:
    """int8 off in this thread for an fp32 section."""
    return _flag(False)


class Int8Conv2d(nn.Module):
    """An ``nn.Conv2d`` that also holds int8 weights and uses them while :func:`int8_mode` is on.

    The input's quantization range is fixed at calibration (``low``, ``high``), never taken
    from the tensor at hand: a tile is then quantized exactly as the whole image is, so
    tiled == whole holds in int8 as in fp32.
    """

    def __init__(self, conv: nn.Conv2d, low: float, high: float) -> None:
        super().__init__()
        self.conv = conv
        weight = conv.weight.detach().float()
        scales = (weight.abs().amax(dim=(1, 2, 3)) / 127.0).clamp_min(1e-12)
        q_weight = torch.clamp(torch.round(weight / scales[:, None, None, None]), -128, 127).to(torch.int8)
        self.geometry = ([int(v) for v in conv.stride], [int(v) for v in conv.padding],  # type: ignore[union-attr]
                         [int(v) for v in conv.dilation], int(conv.groups))
        low, high = min(float(low), 0.0), max(float(high), 0.0)
        self.x_scale = max(high - low, 1e-6) / 255.0
        self.x_zero_point = min(255, max(0, int(round(-low / self.x_scale))))
        stride, padding, dilation, groups = self.geometry
        self.register_buffer("w_scales", scales.to(torch.float64), persistent=False)
        self.register_buffer("w_zero_points", torch.zeros(len(scales), dtype=torch.long), persistent=False)
        self.register_buffer("packed", torch.ops.onednn.qconv_prepack(
            q_weight, self.w_scales, self.x_scale, self.x_zero_point, stride, padding, dilation, groups, None),
            persistent=False)
        bias = conv.bias.detach().float() if conv.bias is not None else None
        self.register_buffer("q_bias", bias, persistent=False)

    @staticmethod
    def supports(conv: nn.Conv2d) -> bool:
        """A plain zero-padded 2-D convolution with numeric padding (what the int8 kernel computes)."""
        return conv.padding_mode == "zeros" and not isinstance(conv.padding, str)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not int8_active() or x.dtype != torch.float32 or torch.is_grad_enabled():
            return self.conv(x)
        x = x.contiguous(memory_format=torch.channels_last)
        with warnings.catch_warnings():  # quantized tensors are only the fast way to round into uint8 here
            warnings.simplefilter("ignore", UserWarning)
            q_x = torch.quantize_per_tensor(x, self.x_scale, self.x_zero_point, torch.quint8).int_repr()
        stride, padding, dilation, groups = self.geometry
        return torch.ops.onednn.qconv2d_pointwise(  # channels-last in, channels-last out: no layout copies
            q_x, self.x_scale, self.x_zero_point, self.packed, self.w_scales, self.w_zero_points, self.q_bias,
            stride, padding, dilation, groups, 1.0, 0, torch.float32, "none", [], "")


def calibrate(model: nn.Module, inputs: list[torch.Tensor], scale: float) -> dict[str, tuple[float, float]]:
    """``{conv name: (low, high)}``: each convolution's input range over ``model(x, scale)`` for ``inputs``.

    Only the convolutions that run outside fp32 sections are recorded (calibration runs
    with int8 on, and fp32 sections turn it off), so the last layers stay float.
    """
    seen: dict[str, list[tuple[float, float]]] = {}
    hooks = []

    def record(name: str) -> object:
        def hook(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            if int8_active():
                low, high = torch.aminmax(args[0].detach())
                seen.setdefault(name, []).append((float(low), float(high)))
        return hook

    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and Int8Conv2d.supports(module):
            hooks.append(module.register_forward_pre_hook(record(name)))
    try:
        with torch.inference_mode(), int8_mode():
            for x in inputs:
                model(x, scale)
    finally:
        for handle in hooks:
            handle.remove()
    return {name: (min(v[0] for v in values), max(v[1] for v in values)) for name, values in seen.items()}


def quantized_copy(model: nn.Module, ranges: Mapping[str, Sequence[float]]) -> nn.Module:
    """A channels-last copy of ``model`` whose convolutions named in ``ranges`` run in int8 under :func:`int8_mode`.

    ``ranges`` is :func:`calibrate`'s result (as the manifest stores it). ``ValueError`` if
    it names no convolution of this network (ranges of other weights, or none measured).
    """
    fast = copy.deepcopy(model).to(memory_format=torch.channels_last).eval()  # int8 kernels want channels-last
    convs = {name: module for name, module in fast.named_modules()
             if isinstance(module, nn.Conv2d) and Int8Conv2d.supports(module)}
    chosen = {name: bounds for name, bounds in ranges.items() if name in convs and len(bounds) == 2}
    if not chosen or len(chosen) != len(ranges):
        raise ValueError("its int8 calibration does not match the network")
    for name, (low, high) in chosen.items():
        parent_name, _, attribute = name.rpartition(".")
        parent = fast.get_submodule(parent_name) if parent_name else fast
        setattr(parent, attribute, Int8Conv2d(convs[name], float(low), float(high)))
    return fast


def calibration_scale(model: nn.Module) -> float:
    """The scale to calibrate at: the network's fixed scale if it has one, else 2 (1 for same-size networks)."""
    supports = getattr(model, "supports_scale", lambda _s: True)
    own = getattr(model, "scale", None)
    if isinstance(own, (int, float)) and supports(float(own)):
        return float(own)
    return 2.0 if supports(2.0) else 1.0
