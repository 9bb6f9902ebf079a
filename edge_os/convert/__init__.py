"""Importers: read a GGUF file or a Hugging Face folder one tensor at a time."""
