"""Pure torch image operators: MATLAB bicubic, CAR's adaptive resampler, differentiable JPEG.

This package owns differentiable, device-agnostic tensor operators shared by the models,
training and the methods. It imports nothing else from ``resizer``, so every layer can
use it without an import cycle; methods that wrap an operator (``matlab-bicubic``) live
in :mod:`resizer.classical`.
"""

from __future__ import annotations

from .car import adaptive_resample, car_sample_positions
from .jpeg import JPEG_CHROMA_TABLE, JPEG_LUMA_TABLE, jpeg_approximation, jpeg_quant_tables
from .matlab import contributions, cubic, imresize

__all__ = [
    "imresize", "cubic", "contributions", "adaptive_resample", "car_sample_positions",
    "JPEG_LUMA_TABLE", "JPEG_CHROMA_TABLE", "jpeg_quant_tables", "jpeg_approximation",
]
