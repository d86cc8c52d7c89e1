"""lowdose.baselines."""
