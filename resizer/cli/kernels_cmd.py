"""``resizer kernels``: parse, then hand everything to :func:`resizer.learned.kernel_picture`.

A picture of the interpolation kernels a learned method predicts (DAIR), written as its
own file by its own command rather than as a side effect of ``resizer up``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import DebugOpt, DeviceOpt, WeightsOpt, app, run_api

ImageArg = Annotated[str, typer.Argument(help="The image whose kernels are drawn.", show_default=False)]
KernelScaleOpt = Annotated[float, typer.Option("--scale", "-s", help="The upscaling factor the kernels are for.",
                                               show_default=False)]
KernelMethodOpt = Annotated[str, typer.Option("--method", "-m", help="A method that predicts its kernels (dair).")]
PictureOpt = Annotated[str, typer.Option("--output", "-o", help="Where the grey picture goes (format from the name: .png).",
                                         show_default=False)]
ReplaceOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")]


@app.command("kernels")
def kernels_command(
    image: ImageArg,
    scale: KernelScaleOpt,
    output: PictureOpt,
    method: KernelMethodOpt = "dair",
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    overwrite: ReplaceOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Draw the interpolation kernels a learned upscaler predicts for an image: a grid of tap-weight maps."""
    from ..errors import UsageError
    from ..image_io import load_picture, save_picture
    from ..learned import kernel_method, kernel_picture

    def draw() -> None:
        kernel_method(method)  # a method without kernel pictures fails before the image is read
        if Path(output).exists() and not overwrite:
            raise UsageError(f"{output}: exists (use --overwrite)")
        picture = kernel_picture(load_picture(image, name=image), scale, method=method, weights=weights,
                                 device=device)
        save_picture(picture, output, overwrite=overwrite)

    run_api(draw, debug=debug)
