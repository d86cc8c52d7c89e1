"""lowdose.data."""
