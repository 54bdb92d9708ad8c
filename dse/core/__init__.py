"""The torch layer: models, the fault model, training, BN calibration, evaluation, cost; imports nothing above it."""
