"""Resource rules shared by the API handlers: ARNs, names, semantic versions, paging, filters."""
