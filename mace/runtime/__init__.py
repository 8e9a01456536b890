"""Runtimes: the CPU (NumPy) reference and the OpenCL GPU runtime, driven by `engine.Engine`."""
