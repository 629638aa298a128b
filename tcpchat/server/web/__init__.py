"""The web side of the server, switched on by `tcpchat serve --web`: the chat page, its files,
and browser members over WebSocket (PROTOCOL.md, WebSocket (browsers)).

Imported only when the web port is on: it needs the optional `websockets` package
(`pip install 'tcpchat[web]'`).  Importing it teaches the fan-out how a browser is written to
(one text frame per event), so that a broadcast is framed once for every browser.
"""

from __future__ import annotations

from tcpchat.protocol import Mode
from tcpchat.server.fanout import ENCODERS
from tcpchat.server.web.codec import WebSocketCodec, encode_frame
from tcpchat.server.web.port import WebPort

ENCODERS[Mode.WEB] = encode_frame

__all__ = ["WebPort", "WebSocketCodec", "encode_frame"]
