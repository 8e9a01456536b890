"""CPU kernels, one module per op family; each registers with `registry.cpu_op`."""
