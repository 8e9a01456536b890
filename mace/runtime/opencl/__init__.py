"""The OpenCL GPU runtime: device choice, program building through the program cache, op kernels."""
