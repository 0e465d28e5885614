"""Processing: land staged uploads in the catalog and their assets in the store."""
