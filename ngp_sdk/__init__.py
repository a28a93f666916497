"""ngp-sdk: Instant Neural Graphics Primitives (hash encoding + tiny MLP) in NVIDIA Warp, on CPU and GPU.

Public surface (one import path per name)::

    from ngp_sdk import Session, ImageConfig
    s = Session.image("photo.exr")
    s.train(seconds=20)
    print(s.evaluate()["psnr"])
    s.save("photo.ingp")
"""

from .config import ImageConfig
from .errors import ConfigError, DataError, DeviceError, NgpError, SnapshotError
from .session import Session, TrainResult

__version__ = "0.1.0"

__all__ = [
    "Session",
    "TrainResult",
    "ImageConfig",
    "NgpError",
    "ConfigError",
    "DataError",
    "SnapshotError",
    "DeviceError",
    "__version__",
]
