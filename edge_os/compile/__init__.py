"""Compile a model definition for a target with TVM Relax into a loadable library."""
