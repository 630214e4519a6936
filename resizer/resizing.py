"""One picture in memory: which method, which size, and the resize itself.

The batch (:mod:`resizer.pipeline`) and the Python API (:mod:`resizer.api`) both come here:
``plan_picture`` picks the method (a paired thumbnail's own upscaler, the one asked for, or
``DEFAULT_METHOD``) and the size plan (:func:`resizer.geometry.plan_size`); ``resize_planned``
checks the output size, runs the method (or keeps the picture, for a box it already fits)
and crops for ``--fill``.
"""

from __future__ import annotations

import copy
import dataclasses

from .errors import ModelError, ResizerError, UsageError
from .framing import crop_picture
from .geometry import SizePlan, SizeSpec, plan_size
from .image_io import DEFAULT_MAX_PIXELS, Picture
from .methods import Direction, Method, ResizeRequest, RunOptions, get_method
from .pairing import CODEC_ONLY, ENCODE_KEYS, PAIRING_KEYS, RESTORE_KEY, encoded_pipeline, read_pairing, recorded_restorer
from .restoration import decode_passes
from .shrink_on_load import forget_full_size, source_size

# ``up``: ASDN, the learned arbitrary-scale upscaler, unless the input carries pairing
# metadata (a CAR/DSN thumbnail), whose own upscaler then restores it (``plan_picture``).
DEFAULT_METHOD: dict[str, str] = {"down": "lanczos", "up": "asdn"}
# ``decode`` of a lossy file in these formats with no resizer key keeps the decoded pixels (no restorer for them;
# ``encode --max-bytes`` writes its full-size candidate so, without spending bytes on metadata).
PLAIN_KEPT_FORMATS = ("WEBP", "AVIF", "JPEG2000", "HEIF")


class _AsDecoded(Method):
    """``decode`` of a file ``encode`` coded at full size: the decoded pixels are the result (never registered)."""

    name = "none"
    directions = frozenset({"up"})

    def resize(self, picture: Picture, request: ResizeRequest, options: RunOptions) -> Picture:
        return copy.copy(picture)


AS_DECODED = _AsDecoded()


def plan_resize(picture: Picture, direction: Direction, spec: SizeSpec, requested: str | None = None,
                require_pairing: bool = False) -> tuple[Method, ResizeRequest]:
    """The method and request for one picture (:func:`plan_picture` without the box plan)."""
    method, request, _ = plan_picture(picture, direction, spec, requested, require_pairing)
    return method, request


def plan_picture(picture: Picture, direction: Direction, spec: SizeSpec, requested: str | None = None,
                 require_pairing: bool = False) -> tuple[Method, ResizeRequest, SizePlan | None]:
    """The method, request and size plan (None: a paired restore) for one picture.

    ``up`` of a paired thumbnail (pairing metadata, :mod:`resizer.pairing`, and the size
    it was made at) uses the partner upscaler and restores the original size, when no
    other method and no other scale is asked for; ``--scale``/``--width``/``--height``
    may then be left out. Otherwise: the method asked for, else ``DEFAULT_METHOD``.
    """
    if direction == "up":
        try:
            pairing = read_pairing(picture.metadata.text)
        except ResizerError:
            if require_pairing or spec.empty:
                raise  # the pairing was to restore the size: say why it cannot
            pairing = None  # a size was given: the malformed pairing is not needed
        if (pairing is not None and pairing.fits((picture.width, picture.height))
                and requested in (None, pairing.method)
                and (spec.empty or (spec.scale is not None and abs(spec.scale - pairing.scale) < 1e-9))):
            method = get_method(pairing.method)
            request = ResizeRequest("up", pairing.original_size, pairing.scale, paired_with=pairing.model or None)
            return method, request, None
        plain_kept = (not any(k.startswith("resizer:") for k in picture.metadata.text)
                      and picture.metadata.source_format in PLAIN_KEPT_FORMATS)
        if require_pairing and pairing is None and (encoded_pipeline(picture.metadata.text) == CODEC_ONLY or plain_kept):
            size = (picture.width, picture.height)
            return AS_DECODED, ResizeRequest("up", size, 1.0), SizePlan(size, 1.0, keep=True)
        if require_pairing and pairing is None and picture.metadata.source_format in ("JPEG", "MPO"):
            from .restoration import DEFAULT_RESTORER, plan_restoration  # a plain JPEG: undo its artefacts

            size = (picture.width, picture.height)
            decision = plan_restoration(picture.metadata.source_format, picture.metadata.jpeg_quality)
            kept = None if decision.method else SizePlan(size, 1.0, keep=True)  # too good to gain: as decoded
            return get_method(DEFAULT_RESTORER), ResizeRequest("up", size, 1.0), kept
        if require_pairing:
            reason = "no resizer pairing metadata" if pairing is None else (
                f"resized since it was made ({picture.width}x{picture.height}, not the {pairing.scale:g}x thumbnail "
                f"of {pairing.original_size[0]}x{pairing.original_size[1]})")
            raise ResizerError(f"{reason}: not a file written by 'resizer encode' or 'resizer down --method car|dsn' "
                               "(nor a plain JPEG, WebP, AVIF or JPEG 2000, which decode restores or keeps); enlarge ordinary images with "
                               "'resizer up --scale S'")
    if spec.empty:
        raise UsageError("give one of --scale, --width, --height, --fit or --fill (only thumbnails made by a paired method, "
                         "such as 'down --method car', know their original size)")
    plan = plan_size(*source_size(picture), direction, spec)
    return get_method(requested or DEFAULT_METHOD[direction]), ResizeRequest(direction, plan.size, plan.scale), plan


def check_output_size(size: tuple[int, int], max_output_pixels: int | None) -> None:
    """``UsageError`` if an output of ``size`` would have more than ``max_output_pixels`` pixels.

    Checked before any resampling, so an absurd size is one line, not an allocation failure.
    """
    if max_output_pixels is not None and size[0] * size[1] > max_output_pixels:
        raise UsageError(f"the output would be {size[0]}x{size[1]} ({size[0] * size[1]} pixels), more than "
                         f"--max-output-pixels {max_output_pixels}")


def resize_picture(picture: Picture, direction: Direction, spec: SizeSpec, method: str | None = None,
                   run: RunOptions | None = None, require_pairing: bool = False,
                   max_output_pixels: int | None = DEFAULT_MAX_PIXELS,
                   settings_used: dict | None = None, restore: bool | None = False) -> tuple[Picture, Method]:
    """Resize one in-memory picture; the Python API's simplest entry point.

    ``settings_used``, if given, receives the ``device`` and ``precision`` the method ran with;
    ``restore`` is :func:`resize_planned`'s (:class:`resizer.api.Resizer` passes ``None``, the CLI's default).
    """
    resized, chosen, _ = resize_planned(picture, direction, spec, method, run, require_pairing, max_output_pixels,
                                        settings_used, restore)
    return resized, chosen


def resize_planned(picture: Picture, direction: Direction, spec: SizeSpec, method: str | None = None,
                   run: RunOptions | None = None, require_pairing: bool = False,
                   max_output_pixels: int | None = DEFAULT_MAX_PIXELS,
                   settings_used: dict | None = None, restore: bool | None = False) -> tuple[Picture, Method, bool]:
    """:func:`resize_picture`, plus whether it was resampled (False: kept at its size, perhaps cropped).

    ``restore`` (``up``): a JPEG input is first restored by the learned restoration family
    when :func:`resizer.restoration.plan_restoration` says so (``None``: for learned upscalers
    only, so the classical filters stay Pillow alone unless asked); ``settings_used["restore"]``
    receives what was done (for the ``--json`` row), as it does when ``decode`` restores a plain JPEG.
    """
    if method is None and run is not None and run.weights:
        from .weights.infer import infer_method

        method = infer_method(run.weights)  # the file says what reads it
    chosen, request, plan = plan_picture(picture, direction, spec, method, require_pairing)
    check_output_size(request.size, max_output_pixels)
    if plan is not None and plan.keep:
        resized = copy.copy(picture)  # the caller's picture keeps its own metadata object
        if _is_restorer(chosen) and settings_used is not None:  # decode of a plain JPEG above the threshold
            from .restoration import plan_restoration

            meta = picture.metadata
            settings_used["restore"] = plan_restoration(meta.source_format, meta.jpeg_quality).to_json()
    else:
        chosen.validate(request, run)
        source = picture
        if direction == "up" and plan is not None:
            picture = _restored_first(picture, restore, chosen, run, settings_used)
        elif direction == "up" and RESTORE_KEY in picture.metadata.text:  # a paired thumbnail encode restored
            picture = _restored_as_recorded(picture, run, settings_used)
        elif _is_restorer(chosen) and settings_used is not None:
            settings_used["restore"] = {"method": chosen.name, "quality": picture.metadata.jpeg_quality,
                                        "reason": "plain jpeg, no pairing metadata", "passes": decode_passes(run)}
        if _is_restorer(chosen) and plan is None:  # decode of a plain JPEG: the ensemble, as for recorded restores
            from .restoration import restore_picture

            resized = forget_full_size(restore_picture(picture, chosen.name, run or RunOptions(), decode_passes(run)))
        else:
            resized = forget_full_size(chosen.resize(picture, request, run or RunOptions()))
        picture = source
        if settings_used is not None:
            settings_used["device"], settings_used["precision"] = chosen.run_settings(request, run or RunOptions())
    if plan is not None and plan.crop is not None:
        resized = crop_picture(resized, plan.crop, spec.gravity)
    return _without_stale_pairing(resized, picture), chosen, not (plan is not None and plan.keep)


def _is_restorer(method: Method) -> bool:
    family = getattr(method, "family", None)
    return bool(getattr(family, "restores", None))


def _restored_first(picture: Picture, restore: bool | None, upscaler: Method, run: RunOptions | None,
                    settings_used: dict | None) -> Picture:
    """``picture``, restored first if it is a JPEG worth restoring; the decision goes in ``settings_used``.

    ``restore`` None: only before a learned ``upscaler`` (a classical filter stays Pillow alone).
    """
    from .restoration import plan_restoration, restore_picture

    decision = plan_restoration(picture.metadata.source_format, picture.metadata.jpeg_quality, enabled=restore is not False)
    if decision.method is not None and restore is None and not upscaler.learned:
        decision = dataclasses.replace(decision, method=None, reason="classical method (--restore restores first)")
    if decision.method is not None:
        try:
            # the bundled restorer: a --weights file is the upscaler's
            picture = restore_picture(picture, decision.method, dataclasses.replace(run or RunOptions(), weights=None))
        except ModelError:  # no restoration weights installed: enlarge the file as it is, and say so
            decision = dataclasses.replace(decision, method=None, reason=f"no weights for {decision.method}")
    if settings_used is not None:
        settings_used["restore"] = decision.to_json()
    return picture


def _restored_as_recorded(picture: Picture, run: RunOptions | None, settings_used: dict | None) -> Picture:
    """A paired thumbnail restored by the family its ``resizer:restore`` key names, before its upscaler.

    ``encode --max-bytes`` measured the round trip with that restoration, so it runs whatever the
    estimated quality; a key naming no restoration family is an error rather than a guess.
    """
    from .restoration import restore_picture

    name = recorded_restorer(picture.metadata.text)
    restorer = get_method(name)
    if not _is_restorer(restorer):
        raise ResizerError(f"resizer:restore names '{name}', which is no restoration method")
    quality = picture.metadata.jpeg_quality
    passes = decode_passes(run)
    picture = restore_picture(picture, name, dataclasses.replace(run or RunOptions(), weights=None), passes)
    if settings_used is not None:
        settings_used["restore"] = {"method": name, "quality": quality, "reason": "recorded by encode", "passes": passes}
    return picture


def _without_stale_pairing(resized: Picture, source: Picture) -> Picture:
    """Drop pairing keys the output only inherited: a restored or re-resized image is no paired thumbnail.

    A paired downscale writes fresh keys (another original size), which are kept. The keys
    ``encode`` records its choice in (``ENCODE_KEYS``) are dropped whenever inherited.
    """
    before, after = source.metadata.text, resized.metadata.text
    stale = [k for k in ENCODE_KEYS if k in before and after.get(k) == before[k]]
    inherited = {k: before.get(k) for k in PAIRING_KEYS}
    if any(v is not None for v in inherited.values()) and {k: after.get(k) for k in PAIRING_KEYS} == inherited:
        stale += PAIRING_KEYS
    if not stale:
        return resized
    text = {k: v for k, v in after.items() if k not in stale}
    resized.metadata = dataclasses.replace(resized.metadata, text=text)  # a fresh Metadata: the source keeps its own
    return resized
