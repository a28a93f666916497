"""warp_kernels: the reusable kernel library of ngp-sdk (layer 0 kernels + layer 1 launch functions).

Nothing in this package holds SDK state; every launch function takes Warp arrays and returns Warp arrays on
the same device. Import names from their submodules (``warp_kernels.hash_encoding`` etc.).
"""

__all__: list[str] = []

import os as _os

# OpenBLAS worker threads spin for ~0.1 s after every call (OPENBLAS_THREAD_TIMEOUT defaults to 2^28 cycles),
# stealing both cores from the Warp CPU launches that follow a matmul. Ask them to sleep quickly unless the user
# chose a value. OpenBLAS reads this when NumPy is first imported, so it only helps if that happens after here.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
