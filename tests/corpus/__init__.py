"""The bad-input corpus (issue 17): every case is made by code from a small clean twin of its format.

A case copies the twin into its own folder, breaks one thing and names the command that meets it and
what must happen: ``refused`` (exit 1, one clear line naming ``mention``: the file, row or key) or
``accepted`` (exit 0, with the handling documented in docs/bad-input.md; ``mention`` then names what the
output must say about it, or is empty). Nothing is stored as binary blobs.
"""
