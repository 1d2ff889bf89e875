"""Pipeline assembly, options and the ``peloton`` command line."""
