"""lowdose.io."""
