"""What can go wrong for a client, each with one sentence for a person (`str(error)`).

Apart from the connection so that the trust decisions (`trust`) can refuse a server in the same
words without importing the connection that asks them.
"""

from __future__ import annotations

from tcpchat.protocol import Error, ErrorCode


class ChatError(Exception):
    """Something a person should be told in one sentence (`str(error)`)."""


class ConnectionLost(ChatError):
    """The server closed the connection or stopped answering."""


class TlsRefused(ChatError):
    """TLS could not be set up with the server, or its certificate was not trusted."""


class NotTlsServer(TlsRefused):
    """The server answered the TLS handshake with something that is not TLS."""


class JoinRefused(ChatError):
    """The server answered `hello` with an error; `error.code` says which."""

    def __init__(self, error: Error) -> None:
        super().__init__(error.message)
        self.error = error

    @property
    def can_retry(self) -> bool:
        """True for `bad_name` and `name_taken`: the connection is open for another `hello`."""
        return self.error.code in (ErrorCode.BAD_NAME, ErrorCode.NAME_TAKEN)
