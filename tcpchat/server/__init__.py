"""The server side: the room and its rules, who may come in, and the asyncio server around them.

`chat_server` moves bytes between the network and the room; `room`, `guard` and `flood` decide
(no I/O); `accept`, `console` and `moderation` are the edges (sockets, the operator).  Nothing
here imports the client.
"""
