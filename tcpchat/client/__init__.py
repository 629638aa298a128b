"""The client side: a JSON-mode connection to a server, the TLS trust it needs, the script mode,
and `ui`, the interactive chat screen.  Nothing here imports the server."""
