"""Shape and coordinate rules, one module per op family (conv, deconv, pool, resize, batchnorm,
linear, softmax, movement) plus per-node flops: the arithmetic both runtimes, the converter and
the tools must agree on, kept in one place so a CPU kernel and a GPU kernel cannot drift apart.
Pure NumPy: nothing here imports a runtime."""
