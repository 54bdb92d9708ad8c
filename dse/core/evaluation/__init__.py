"""Accuracy under faults: Monte-Carlo over crossbars, BN calibration, folded and int8 forwards, resume, lifetime."""
