"""Curation: perceptual fingerprints of the lake's images, for finding near-duplicates."""
