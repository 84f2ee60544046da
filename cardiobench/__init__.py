"""cardiobench: a benchmark-and-reproduction suite for cardiac imaging AI."""

__version__ = "0.1.0"
