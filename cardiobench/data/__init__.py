"""Dataset formats (readers of real on-disk layouts and writers of their synthetic twins)."""
