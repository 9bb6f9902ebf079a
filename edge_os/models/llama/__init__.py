"""The Llama family: Llama 2/3, SmolLM/SmolLM2, TinyLlama, Mistral (no sliding window)."""
