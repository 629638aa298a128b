"""The protocol's numbers, in a module of their own so that `tcpchat --help` can show them
without loading the protocol machinery (and asyncio) it does not need."""

PROTOCOL_VERSION = 1
DEFAULT_PORT = 1024
# The web page's port when `serve --web` names none: the usual second HTTP port.
DEFAULT_WEB_PORT = 8080
KIB = 1024
# A line limit well above the longest valid message (1024 characters of up to 4 UTF-8 bytes each,
# plus JSON escaping) but small enough that a peer cannot make us buffer much: the same 16 KiB
# h11 uses for its header limit.
DEFAULT_LINE_LIMIT = 16 * KIB
DEFAULT_MAX_TEXT = 1024
SECONDS = 1.0  # the unit of every duration: `60 * SECONDS`
# How much one read from a socket asks for, on either side.
READ_CHUNK = 64 * KIB
# The history file's retention (`tcpchat serve --keep-days`, `--keep-messages`): a year, and a
# million messages a room (the size the store is measured at); 0 turns a limit off.
DEFAULT_KEEP_DAYS = 365
DEFAULT_KEEP_MESSAGES = 1_000_000
