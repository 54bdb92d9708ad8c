"""Training with drop-connect, resumable step for step, and growing a trained network wider."""
