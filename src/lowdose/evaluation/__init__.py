"""lowdose.evaluation."""
