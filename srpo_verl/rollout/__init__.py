"""Rollout backends srpo_verl adds to verl (registered by name from the plugin entry point)."""
