"""warp_kernels: the reusable kernel library of ngp-sdk (layer 0 kernels + layer 1 launch functions).

Nothing in this package holds SDK state; every launch function takes Warp arrays and returns Warp arrays on
the same device. Import names from their submodules (``warp_kernels.hash_encoding`` etc.).
"""

__all__: list[str] = []

