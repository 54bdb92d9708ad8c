"""The machine a run uses: its device, its allocator, the precision it computes in, its int8 kernels."""
