"""lowdose.report."""
