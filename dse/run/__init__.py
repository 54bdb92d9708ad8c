"""Running work: typed tasks, the job lifecycle, sweep specs, sweeps and their backends."""
