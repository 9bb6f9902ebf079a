"""Group-wise quantization: formats, a numpy reference, and the TVM model rewrite."""
