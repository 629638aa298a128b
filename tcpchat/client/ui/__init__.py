"""The interactive chat screen (prompt_toolkit): `screen` runs it, `render` draws its lines."""
