"""Runtimes: the CPU (NumPy) reference and the OpenCL GPU runtime, driven by `engine.Engine`.

The runtime choice is declared here once (no imports: the command line's options read it cheaply).
"""

#: "cpu"; "gpu" (every op on the GPU, or a DeviceError listing those that cannot be); "cpu+gpu"
#: (ops without a GPU kernel on the CPU runtime)
RUNTIMES = ("cpu", "gpu", "cpu+gpu")
#: a model file that names no runtime runs here: the GPU, with the CPU runtime for what it lacks
DEFAULT_RUNTIME = "cpu+gpu"
