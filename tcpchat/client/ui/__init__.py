"""The interactive chat screen (prompt_toolkit).

`state` is the session as data (testable without a socket or a terminal), `commands` reads typed
lines, `completer` completes them, `reconnect` is the retry policy, `render` draws lines,
`asking` asks the questions before the chat, and `screen` runs it all on a prompt and a
connection."""
