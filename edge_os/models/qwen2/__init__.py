"""Qwen2 / Qwen2.5: the Llama layer stack with q/k/v biases; it reuses edge_os.models.llama."""
