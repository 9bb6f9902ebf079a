"""On-device engine: load a verified package and generate text with TVM."""
