"""edge-os: run real LLMs on edge devices under memory and thermal budgets."""

__version__ = "0.1.0"
