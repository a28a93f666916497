"""ngp-sdk: Instant Neural Graphics Primitives (hash encoding + tiny MLP) in NVIDIA Warp, on CPU and GPU.

Public surface::

    from ngp_sdk import Session, ImageConfig
    s = Session.image("photo.exr")
    s.train(seconds=20)
    print(s.evaluate()["psnr"])
    s.save("photo.ingp")

Packages: :mod:`ngp_sdk.core` (primitive-agnostic: session, fields, optimiser, snapshots, registry) and one
package per primitive (:mod:`ngp_sdk.image`, :mod:`ngp_sdk.nerf`, :mod:`ngp_sdk.sdf`,
:mod:`ngp_sdk.nrc`). Importing ``ngp_sdk``
registers the built-in primitives with :mod:`ngp_sdk.core.registry`.
"""

from ngp_sdk import image, nerf, nrc, sdf  # noqa: F401 - each primitive package registers itself
from ngp_sdk.core.errors import ConfigError, DataError, DeviceError, NgpError, SnapshotError
from ngp_sdk.core.session import Session, TrainResult
from ngp_sdk.image.config import ImageConfig
from ngp_sdk.nerf.config import NerfConfig
from ngp_sdk.sdf.config import SdfConfig

__version__ = "0.1.0"

__all__ = [
    "Session",
    "TrainResult",
    "ImageConfig",
    "NerfConfig",
    "SdfConfig",
    "NgpError",
    "ConfigError",
    "DataError",
    "SnapshotError",
    "DeviceError",
    "__version__",
]
