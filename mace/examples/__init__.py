"""Bundled example models (the digits CNN used by `mace demo`)."""
