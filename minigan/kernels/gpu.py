"""The GPU's kernel table (numba-cuda twins of the reference code); empty until they land:
every kernel on the GPU is then its reference, run by CuPy."""
TABLE: dict = {}
