"""Results: the SQLite store (all SQL lives there) and the catalog that fills it from checkpoint folders."""
