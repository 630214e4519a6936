"""Output-size geometry: the one rounding rule, the size requests (``SizeSpec``) and boxes.

Sizes round halves up (``floor(x + 0.5)``), never to even as Python's ``round`` does:
the pipeline, the models' natural outputs, pairing metadata and training patches must
all agree on the size of ``round(side * scale)`` and ``round(side / scale)``.

A ``SizeSpec`` is one of: a factor (``--scale 4``, at least 1, the direction says which
way), a percentage of the input (``--scale 25%``), a width or a height (aspect kept), a
box to fit inside (``--fit 320x240``, either side may be left out) or a box to fill and
crop to (``--fill 320x320``, with a ``gravity``). Under a box the direction is a promise:
``down`` never enlarges and ``up`` never shrinks, so an input already on the right side of
the box keeps its size (``keep`` in :func:`plan_size`); ``only_shrink`` extends that to
``down --width/--height``. Pure Python: importing it costs nothing (no torch, no numpy).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .errors import UsageError

if TYPE_CHECKING:
    import torch

Direction = Literal["down", "up"]
GRAVITIES: tuple[str, ...] = ("centre", "north", "south", "east", "west", "north-east", "north-west",
                              "south-east", "south-west", "attention")
_GRAVITY_ALIASES = {"center": "centre", "northeast": "north-east", "northwest": "north-west",
                    "southeast": "south-east", "southwest": "south-west"}


def round_half_up(value: float) -> int:
    """``value`` rounded to the nearest integer, halves up (2.5 -> 3)."""
    return int(math.floor(value + 0.5))


def upscaled_size(h: int, w: int, scale: float) -> tuple[int, int]:
    """An upscaler's output ``(height, width)``: each side times ``scale``, halves rounded up."""
    return math.floor(h * scale + 0.5), math.floor(w * scale + 0.5)


def downscaled_size(h: int, w: int, scale: float) -> tuple[int, int]:
    """A downscaler's output ``(height, width)``: each side divided by ``scale``, halves up, at least 1."""
    return max(1, math.floor(h / scale + 0.5)), max(1, math.floor(w / scale + 0.5))


def fit_to_size(out: "torch.Tensor", target: tuple[int, int]) -> "torch.Tensor":
    """Bring an upscaler's natural output to exactly ``target`` ``(height, width)``.

    One pixel off (another rounding of ``size * scale``): crop, or repeat the last
    row/column. More (an aspect ratio change): MATLAB bicubic resize to ``target``.
    """
    height, width = int(out.shape[-2]), int(out.shape[-1])
    if (height, width) == target:
        return out
    dh, dw = target[0] - height, target[1] - width
    if abs(dh) <= 1 and abs(dw) <= 1:
        import torch

        out = out[..., : min(height, target[0]), : min(width, target[1])]
        if dh > 0 or dw > 0:
            out = torch.nn.functional.pad(out, (0, max(dw, 0), 0, max(dh, 0)), mode="replicate")
        return out.contiguous()
    from .ops import imresize

    return imresize(out, size=target)


def anchor_to(x: "torch.Tensor", size: tuple[int, int]) -> "torch.Tensor":
    """Crop, or pad by repeating the last row/column, at the bottom/right to ``size`` ``(height, width)``."""
    import torch

    x = x[..., : size[0], : size[1]]
    pad_h, pad_w = size[0] - int(x.shape[-2]), size[1] - int(x.shape[-1])
    if pad_h or pad_w:
        x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x.contiguous()


# --------------------------------------------------------------------------- size requests


def parse_scale(text: str | float | None) -> tuple[float | None, float | None]:
    """``"4"`` -> ``(4.0, None)``; ``"25%"`` -> ``(None, 25.0)``: a factor or a percentage of the input size."""
    if text is None:
        return None, None
    if isinstance(text, (int, float)):
        return float(text), None
    raw = text.strip()
    percent = raw.endswith("%")
    try:
        value = float(raw[:-1] if percent else raw)
    except ValueError:
        raise UsageError(f"--scale {text}: not a number or a percentage (give 4, 2.5 or 25%)") from None
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"--scale must be a positive number, not {text}")
    return (None, value) if percent else (value, None)


_BOX = re.compile(r"^\s*(\d*)\s*[xX]\s*(\d*)\s*$")


def parse_box(text: str | None, option: str = "--fit", partial: bool = True) -> tuple[int | None, int | None] | None:
    """``"320x240"`` -> ``(320, 240)``; ``"320x"`` -> ``(320, None)`` when ``partial``; None stays None."""
    if text is None:
        return None
    match = _BOX.match(text)
    if not match or not (match.group(1) or match.group(2)):
        raise UsageError(f"{option} {text}: give WIDTHxHEIGHT in pixels, e.g. 320x240" +
                         (" (or 320x, x240)" if partial else ""))
    width, height = (int(v) if v else None for v in match.groups())
    if not partial and (width is None or height is None):
        raise UsageError(f"{option} {text}: give both sides, e.g. 320x320")
    for value in (width, height):
        if value is not None and value < 1:
            raise UsageError(f"{option} {text}: each side must be at least 1 pixel")
    return width, height


def normalise_gravity(name: str) -> str:
    """A ``--gravity`` name (``center`` and ``northeast`` spellings too); ``UsageError`` for others."""
    key = name.strip().lower()
    key = _GRAVITY_ALIASES.get(key, key)
    if key not in GRAVITIES:
        raise UsageError(f"--gravity {name}: unknown (known: {', '.join(GRAVITIES)})")
    return key


@dataclass(frozen=True)
class SizeSpec:
    """How big the output should be: exactly one of scale, percent, width, height, fit or fill."""

    scale: float | None = None
    width: int | None = None
    height: int | None = None
    percent: float | None = None  # ``--scale 25%``: a quarter of the input's width and height
    fit: tuple[int | None, int | None] | None = None  # the box to fit inside; a None side is free
    fill: tuple[int, int] | None = None  # the box to cover, then crop to
    gravity: str = "centre"  # where ``fill`` crops: a compass point, ``centre`` or ``attention``
    only_shrink: bool = False  # ``down --width/--height``: inputs already smaller keep their size

    def __post_init__(self) -> None:
        given = [v for v in (self.scale, self.width, self.height, self.percent, self.fit, self.fill) if v is not None]
        if len(given) > 1:
            raise UsageError("give only one of --scale, --width, --height, --fit and --fill")
        for name, number in (("--scale", self.scale), ("--scale", self.percent)):
            if number is not None and not (math.isfinite(number) and number > 0):
                raise UsageError(f"{name} must be a positive number, not {number}")
        for name, value in (("--width", self.width), ("--height", self.height)):
            if value is not None and value < 1:
                raise UsageError(f"{name} must be at least 1 pixel, not {value}")
        if self.fit is not None and self.fit[0] is None and self.fit[1] is None:
            raise UsageError("--fit needs a width, a height or both")
        object.__setattr__(self, "gravity", normalise_gravity(self.gravity))

    @property
    def empty(self) -> bool:
        return all(v is None for v in (self.scale, self.width, self.height, self.percent, self.fit, self.fill))

    @property
    def box(self) -> bool:
        """True for ``--fit`` and ``--fill``: sizes that follow each input's shape."""
        return self.fit is not None or self.fill is not None

    def check_direction(self, direction: Direction) -> None:
        """``UsageError`` for a factor or percentage that says the opposite of ``direction``."""
        other = "up" if direction == "down" else "down"
        if self.scale is not None and self.scale < 1:
            hint = (f"'down --scale {1 / self.scale:g}' or '--scale {self.scale * 100:g}%'" if direction == "down"
                    else f"'resizer down --scale {1 / self.scale:g}'")
            raise UsageError(f"--scale {self.scale:g} is below 1: 'resizer {direction} --scale S' makes images "
                             f"S times {'smaller' if direction == 'down' else 'larger'}; did you mean {hint}?")
        if self.percent is not None and (self.percent > 100 if direction == "down" else self.percent < 100):
            raise UsageError(f"--scale {self.percent:g}% makes images {'larger' if direction == 'down' else 'smaller'}; "
                             f"use 'resizer {other} --scale {self.percent:g}%'")
        if self.only_shrink and direction == "up":
            raise UsageError("--only-shrink is for 'resizer down' ('up' never shrinks a box's inputs)")

    def tag(self, direction: Direction) -> str:
        """Short label used in default output names: ``down4``, ``up2.7``, ``w800``, ``fit320x``, ``down25pct``."""
        if self.width is not None:
            return f"w{self.width}"
        if self.height is not None:
            return f"h{self.height}"
        if self.scale is not None:
            return f"{direction}{self.scale:g}"
        if self.percent is not None:
            return f"{direction}{self.percent:g}pct"
        if self.fit is not None:
            return "fit" + "x".join("" if v is None else str(v) for v in self.fit)
        if self.fill is not None:
            return f"fill{self.fill[0]}x{self.fill[1]}"
        return direction


@dataclass(frozen=True)
class SizePlan:
    """One input's output size: what the method makes (``size``), the factor, and the final crop."""

    size: tuple[int, int]  # (width, height) the method resizes to
    scale: float  # >= 1: the factor learned methods pick their model by
    crop: tuple[int, int] | None = None  # ``fill``: (width, height) cut out of ``size`` afterwards
    keep: bool = False  # the input is already on the right side of the target: written at its own size


def output_size(width: int, height: int, direction: Direction, spec: SizeSpec) -> tuple[tuple[int, int], float]:
    """Output (width, height) and the scale factor (>= 1 for a real down/up) for one input size.

    ``up`` gives round(w*S) x round(h*S); ``down`` round(w/S) x round(h/S), never below
    one pixel; ``--width``/``--height`` keep the aspect ratio. Halves round up
    (:func:`round_half_up`). ``down`` multiplies by ``1/S`` rather than dividing as
    :func:`downscaled_size` does: the two differ in the last bit for some sizes, and the
    pipeline's outputs must not change. Boxes: see :func:`plan_size`.
    """
    plan = plan_size(width, height, direction, spec)
    return plan.size, plan.scale


def plan_size(width: int, height: int, direction: Direction, spec: SizeSpec) -> SizePlan:
    """The :class:`SizePlan` of one ``width`` x ``height`` input; ``UsageError`` if ``direction`` cannot serve it."""
    spec.check_direction(direction)
    if spec.scale is not None or spec.percent is not None:
        if spec.scale is not None:
            factor = spec.scale if direction == "up" else 1.0 / spec.scale
        else:
            factor = spec.percent / 100.0
        if not math.isfinite(max(width, height) * factor):
            raise UsageError(f"--scale {spec.scale or spec.percent:g} gives an output too large for any image")
        size = (max(1, round_half_up(width * factor)), max(1, round_half_up(height * factor)))
        scale = spec.scale if spec.scale is not None else (factor if direction == "up" else 1.0 / factor)
        return SizePlan(size, scale)
    if spec.fit is not None or spec.fill is not None:
        return _box_plan(width, height, direction, spec)
    if spec.width is not None:
        ratio = spec.width / width
        size = (spec.width, max(1, round_half_up(height * ratio)))
    elif spec.height is not None:
        ratio = spec.height / height
        size = (max(1, round_half_up(width * ratio)), spec.height)
    else:
        raise UsageError("give one of --scale, --width, --height, --fit or --fill")
    scale = ratio if direction == "up" else 1.0 / ratio
    if scale < 1.0:
        if spec.only_shrink:
            return SizePlan((width, height), 1.0, keep=True)
        wrong = "larger" if direction == "down" else "smaller"
        raise UsageError(  # the request is wrong for this input, not the input: exit 2
            f"{size[0]}x{size[1]} is {wrong} than the input {width}x{height}; "
            f"use 'resizer {'up' if direction == 'down' else 'down'}'" + (" or --only-shrink" if direction == "down" else "")
        )
    return SizePlan(size, scale)


def fit_ratio(width: int, height: int, box: tuple[int | None, int | None]) -> float:
    """The factor that makes ``width`` x ``height`` just fit inside ``box`` (a None side is free)."""
    return min(side / own for side, own in zip(box, (width, height)) if side is not None)


def fill_ratio(width: int, height: int, box: tuple[int, int]) -> float:
    """The factor that makes ``width`` x ``height`` just cover ``box`` (then cropped to it)."""
    return max(box[0] / width, box[1] / height)


def _scaled(width: int, height: int, ratio: float, box: tuple[int | None, int | None]) -> tuple[int, int]:
    """``width`` x ``height`` times ``ratio``, halves up, at least 1, the box's sides exact where they bind."""
    size = [max(1, round_half_up(width * ratio)), max(1, round_half_up(height * ratio))]
    for axis, own in enumerate((width, height)):
        side = box[axis]
        if side is not None and abs(own * ratio - side) < 1e-6 * side:
            size[axis] = side  # the binding side is the box's, whatever the float rounding
    return size[0], size[1]


def _box_plan(width: int, height: int, direction: Direction, spec: SizeSpec) -> SizePlan:
    if spec.fit is not None:
        ratio = fit_ratio(width, height, spec.fit)
        if (ratio > 1.0 and direction == "down") or (ratio < 1.0 and direction == "up") or ratio == 1.0:
            return SizePlan((width, height), 1.0, keep=True)
        return SizePlan(_scaled(width, height, ratio, spec.fit), ratio if direction == "up" else 1.0 / ratio)
    box = spec.fill
    assert box is not None
    ratio = fill_ratio(width, height, box)
    if (ratio > 1.0 and direction == "down") or (ratio < 1.0 and direction == "up") or ratio == 1.0:
        # the direction is never reversed: cut what sticks out of the box, keep the rest
        crop = (min(width, box[0]), min(height, box[1]))
        return SizePlan((width, height), 1.0, crop=None if crop == (width, height) else crop, keep=True)
    cover = _scaled(width, height, ratio, box)
    cover = (max(cover[0], box[0]), max(cover[1], box[1]))
    return SizePlan(cover, ratio if direction == "up" else 1.0 / ratio, crop=None if cover == box else box)


def crop_origin(size: tuple[int, int], crop: tuple[int, int], gravity: str) -> tuple[int, int]:
    """Top-left ``(x, y)`` of a ``crop`` (width, height) inside ``size`` for a compass ``gravity``.

    ``attention`` is not a position: it needs the pixels (:mod:`resizer.framing`).
    """
    spare_x, spare_y = size[0] - crop[0], size[1] - crop[1]
    x = 0 if "west" in gravity else spare_x if "east" in gravity else spare_x // 2
    y = 0 if gravity.startswith("north") else spare_y if gravity.startswith("south") else spare_y // 2
    return x, y
