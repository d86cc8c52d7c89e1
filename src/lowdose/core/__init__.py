"""lowdose.core."""
