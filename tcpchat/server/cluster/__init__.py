"""Several `tcpchat serve` processes sharing one room through Redis (`serve --cluster`).

Redis is the one place that orders a room: a Lua script gives each message its `seq` and its
place in the room's streams in one step, so stream order and `seq` order cannot differ; names
are claimed there, so a name is unique across processes; each process holds a lease there, so
the others can say who left when it dies.  Each process then delivers the room's stream to its
own members in order.  Imported only when `--cluster` is on: it needs the optional `redis`
package (`pip install 'tcpchat[cluster]'`).
"""
