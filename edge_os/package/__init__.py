"""Model packages: a self-describing directory, every file hashed, with everything a device needs."""
