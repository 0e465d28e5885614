"""Upload: read a source, validate it against the rules and stage it, with its new assets, in staging/."""
