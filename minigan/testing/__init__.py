"""Aids for testing minigan; nothing of the engine imports them."""
