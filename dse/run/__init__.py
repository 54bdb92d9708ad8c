"""Running work: typed tasks, the job lifecycle, sweep specs, sweeps and their backends.

Torch-free at import (the page imports it; tests/test_layers.py checks): modules that import torch are imported
inside the functions that train, evaluate or build a model."""
