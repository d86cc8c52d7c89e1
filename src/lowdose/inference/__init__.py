"""lowdose.inference."""
