"""lowdose.owndata."""
