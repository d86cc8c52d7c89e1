"""lowdose.physics."""
