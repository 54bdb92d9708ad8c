"""How crossbar cells fail: stuck-at reads, seeded fault maps, remapping around them, drop-connect in training."""
