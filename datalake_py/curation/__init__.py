"""Curation: perceptual fingerprints of the lake's images, for finding near-duplicates."""

DEFAULT_THRESHOLD = 12  # Hamming distance at or under which two images are near-duplicates (bench/curation.py)
MAX_DISTANCE = 14  # the widest threshold near pairs are recorded for
