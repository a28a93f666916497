"""The primitive-agnostic core of ngp-sdk.

Config building blocks (tcnn / instant-ngp JSON), hash-grid + MLP fields with flat parameter buffers, the
optimiser, the background trainer, the :class:`~ngp_sdk.core.session.Session`, snapshots, metrics, cameras and
camera paths, the one image reader, mesh I/O and iso-surfaces, typed errors, devices, the task protocols
(:mod:`~ngp_sdk.core.task`) and the primitive registry (:mod:`~ngp_sdk.core.registry`).

The import rule (enforced by ``tests/test_layering.py``): ``core`` imports only ``warp_kernels`` and itself,
never a primitive package; primitives find each other only through the registry.
"""
