"""Classical resampling through Pillow: nearest, bilinear, bicubic, lanczos, box.

Pillow does the arithmetic; this module only adapts pixel formats (alpha, 16 bits)
and registers the methods. Never re-implement these filters.
"""
