"""lowdose.simulate."""
