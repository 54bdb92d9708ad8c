"""Where a network sits on the crossbar: which layers (mapping), their 8-bit levels, which tile cells hold each weight."""
