"""The Lua scripts that change a room in Redis: each runs whole or not at all, and nothing else
runs meanwhile, which is what makes the room one room whatever the number of processes.

Every change that members must see in one order (a message, a join, a leave) is added to the
room's `events` stream inside the script that makes it, so the stream's order is the order of
the changes themselves; a message's `seq` is counted in the same script, so `seq` order and
stream order cannot differ.  Names are `PROCESS CONNECTION NAME` values under their folded
form: only the connection that holds a name can let it go, and a dead process's names can be
found (its `owned` set) and freed, each with its `left`.
"""

from __future__ import annotations

# KEYS: seq, events, history, names, ids (the sender's lineage's ids).  ARGV: from, text, ts, me,
# origin, tag, history_max, events_max, id digest ('' without an id), seconds ids are kept.
# Returns {seq, event id}; the event also says to how many others it went.  A message whose id
# the lineage sent before (on any process) is not added again: {0, 'SEQ TS DELIVERED'} of it.
SAY = """
if ARGV[9] ~= '' then
  local was = redis.call('HGET', KEYS[5], ARGV[9])
  if was then
    return {0, was}
  end
end
local seq = redis.call('INCR', KEYS[1])
local others = math.max(redis.call('HLEN', KEYS[4]) - 1, 0)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '0-' .. seq,
           'from', ARGV[1], 'text', ARGV[2], 'ts', ARGV[3], 'me', ARGV[4])
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], '*',
           'type', 'message', 'seq', seq, 'from', ARGV[1], 'text', ARGV[2], 'ts', ARGV[3],
           'me', ARGV[4], 'origin', ARGV[5], 'tag', ARGV[6], 'delivered', others)
if ARGV[9] ~= '' then
  redis.call('HSET', KEYS[5], ARGV[9], seq .. ' ' .. ARGV[3] .. ' ' .. others)
  redis.call('EXPIRE', KEYS[5], ARGV[10])
end
return {seq, id}
"""

# KEYS: names, events, owned, seq.  ARGV: folded, display, owner, ts, events_max, origin, conn.
# Returns {1, members, event id, seq} when claimed (`seq`: the newest message before the
# join), or {0, holder's value} when the name is taken.
JOIN = """
local holder = redis.call('HGET', KEYS[1], ARGV[1])
if holder then
  return {0, holder}
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3] .. ' ' .. ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
local count = redis.call('HLEN', KEYS[1])
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*',
           'type', 'joined', 'name', ARGV[2], 'members', count, 'ts', ARGV[4],
           'origin', ARGV[6], 'tag', ARGV[7])
return {1, count, id, tonumber(redis.call('GET', KEYS[4]) or '0')}
"""

# KEYS: names, events, owned.  ARGV: folded, owner, reason, ts, events_max, origin.
# Returns {1, members, event id}, or {0} when `owner` does not hold the name (nothing done).
LEAVE = """
local holder = redis.call('HGET', KEYS[1], ARGV[1])
local mine = ARGV[2] .. ' '
if not holder or string.sub(holder, 1, #mine) ~= mine then
  return {0}
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
local count = redis.call('HLEN', KEYS[1])
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*',
           'type', 'left', 'name', string.sub(holder, #mine + 1), 'members', count,
           'reason', ARGV[3], 'ts', ARGV[4], 'origin', ARGV[6])
return {1, count, id}
"""

# KEYS: names, events, owned (of the dead process).  ARGV: process, ts, events_max, origin.
# Frees every name the process held in this room, each with a `left` (reason disconnected);
# returns how many.  Safe to run twice, or from two processes at once: a name is freed once.
FORGET_PROCESS = """
local prefix = ARGV[1] .. ' '
local gone = 0
for _, folded in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local holder = redis.call('HGET', KEYS[1], folded)
  if holder and string.sub(holder, 1, #prefix) == prefix then
    redis.call('HDEL', KEYS[1], folded)
    local count = redis.call('HLEN', KEYS[1])
    local display = string.match(string.sub(holder, #prefix + 1), '^%S+ (.*)$')
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*',
               'type', 'left', 'name', display, 'members', count, 'reason', 'disconnected',
               'ts', ARGV[2], 'origin', ARGV[4])
    gone = gone + 1
  end
end
redis.call('DEL', KEYS[3])
return gone
"""

# KEYS: seq, history.  The counter is never below the newest message kept (a counter lost while
# the history was not would otherwise give old numbers again); returns the counter.
RAISE_SEQ = """
local newest = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
if newest[1] then
  local top = tonumber(string.match(newest[1][1], '^0%-(%d+)$'))
  if top and top > seq then
    redis.call('SET', KEYS[1], top)
    seq = top
  end
end
return seq
"""
