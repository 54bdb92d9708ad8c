"""What the explorer shows: tables, fronts, charts, the paper's claims and the reproduction report.

Torch-free at import (tests/test_layers.py checks): the few functions that need a model or a cost count import
the torch modules themselves."""
