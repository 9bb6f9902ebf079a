"""Model definitions in ``tvm.relax.frontend.nn``, one folder per architecture."""
