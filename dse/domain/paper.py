"""The paper's design space in one place (shared/paper-notes.md restated): the fault rates it evaluates and
calibrates BN for, its widths and drop-connect rates, and its crossbar count per evaluation. Torch-free."""

FAULT_RATES = (0.0, 0.1, 0.2, 0.3)  # the inference fault rates p' of Algorithm 1 and of every figure
WIDTHS = (1.0, 1.2, 1.4, 1.6)  # Table II's width multipliers
DROPCONNECT_RATES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)  # the drop-connect sweep of Figs. 3-6
CROSSBARS = 100  # crossbar instances per fault rate in the paper's protocol
