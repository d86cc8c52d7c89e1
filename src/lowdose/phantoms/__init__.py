"""lowdose.phantoms."""
