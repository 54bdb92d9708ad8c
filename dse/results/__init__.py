"""Results: the SQLite store (all SQL lives there) and the catalog that fills it from checkpoint folders.

Torch-free at import (the page imports it; tests/test_layers.py checks): reading a checkpoint or pricing a design
imports the torch modules inside the function that does it."""
