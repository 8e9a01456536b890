"""GPU op kernels: one module per op family with its `.cl` file beside it (`base.py` has the contract)."""
