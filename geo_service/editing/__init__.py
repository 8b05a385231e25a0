"""Writes: API keys and roles, validated edits with history, revert, import."""
