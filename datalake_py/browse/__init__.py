"""The lake in a browser: the parts the gallery pages are made of."""
