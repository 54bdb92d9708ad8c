"""rram-dse: design-space explorer for drop-connect fault-tolerant DNNs on RRAM crossbars."""
__version__ = "0.1.0"
