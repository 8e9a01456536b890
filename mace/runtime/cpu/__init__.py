"""The CPU runtime: NumPy kernels, one module per op family in `ops/`; the reference for the GPU."""
