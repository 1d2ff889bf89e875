"""Beam composites: thin glue around the pure kernels in ``peloton``."""
