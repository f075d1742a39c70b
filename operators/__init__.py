"""Thin bpy adapters: compositor and sequencer operators, the CLI command, the image boundary."""
