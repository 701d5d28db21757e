"""A tiny plugin package for import_lock_cycle.py: a registry, and a plugin that registers itself on import."""
