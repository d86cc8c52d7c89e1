"""lowdose.pipeline."""
