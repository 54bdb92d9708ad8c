"""What an image costs on ISAAC (two models), ISAAC's figures and knobs, and the per-chip calibration pass's price."""
