"""The client side: `connection` (a JSON-mode connection to a server), `trust` (whom it trusts
over TLS), `errors`, `script` (join for scripts and bots), `recent` (hosts and names used),
`run` (the join process) and `ui`, the interactive chat screen.  Nothing here imports the server."""
