"""peloton: pure domain kernels (no Apache Beam import here)."""
__version__ = "0.1.0"
