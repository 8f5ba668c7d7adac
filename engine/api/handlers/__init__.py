"""One module per resource family; each registers its operations with @operation."""
