"""lowdose.training."""
