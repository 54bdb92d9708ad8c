"""What the explorer shows: tables, fronts, charts, the paper's claims and the reproduction report (no torch)."""
