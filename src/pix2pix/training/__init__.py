"""Training: the D/G step, the loop around it with checkpoints and resume, and what it records."""
