"""cardiobench: a benchmark-and-reproduction suite for cardiac imaging AI."""
from .cpu_kernels import pin_cpu_kernels

pin_cpu_kernels()  # before anything imports torch: runs reproduce across x86 machines

__version__ = "0.1.0"
