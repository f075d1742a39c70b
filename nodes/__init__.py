"""Compositor node groups built by the extension."""
