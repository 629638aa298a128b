"""The server side: the rooms and their rules, who may come in, and the asyncio server around them.

`config` holds every setting and derives the limits that follow from them.  `room`, `guard` and
`flood` decide (no I/O); a room keeps its messages in a `MessageLog` (the SQLite `store`, or
memory), and `durable` holds what tells of a message until the store has it.  Each
connection is a `member` (its codec, its outbox, its reading task), which knows the server only
as a small `Hub`; `fanout` carries one room's events to its members, one write a turn.
`chat_server` is the door and routes events between members and their room; `accept`, `console`
and `moderation` are the edges (sockets, the operator), and `run` is the serve process around
it all.  Nothing here imports the client.
"""
