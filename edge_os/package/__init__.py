"""Model packages: a self-describing, hashed, signed directory with everything a device needs."""
