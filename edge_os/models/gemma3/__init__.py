"""Gemma 3 (text): interleaved sliding-window and global attention, q/k RMSNorm, GeGLU."""
