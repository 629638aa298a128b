"""The Lua scripts that change a room in Redis: each runs whole or not at all, and nothing else
runs meanwhile, which is what makes the room one room whatever the number of processes.

Every change that members must see in one order (a message, a join, a leave, a rename) is added
to the room's `events` stream inside the script that makes it, so the stream's order is the order
of the changes themselves; a message's `seq` is counted in the same script, so `seq` order and
stream order cannot differ.  Names are `PROCESS CONNECTION NAME` values under their folded
form: only the connection that holds a name can let it go, and a dead process's names can be
found (its `owned` set) and freed, each with its `left`.  Beside each name the room keeps its
look-alike keys (`looks`: key -> folded name, so that `аlice` cannot join beside `alice` on
another process) and the digest of its connection's token (`claims`), which is what lets a
`hello` on any process take the name back.
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

# Frees the name `folded` held as `holder` (the names hash's value): the name, its look-alike
# keys and its token digest.  KEYS[1], KEYS[3], KEYS[4], KEYS[5]: names, owned, looks, claims.
_RELEASE = """
local function release(folded)
  redis.call('HDEL', KEYS[1], folded)
  redis.call('SREM', KEYS[3], folded)
  local claim = redis.call('HGET', KEYS[5], folded)
  if claim then
    for _, look in ipairs(cjson.decode(claim).l) do
      if redis.call('HGET', KEYS[4], look) == folded then
        redis.call('HDEL', KEYS[4], look)
      end
    end
    redis.call('HDEL', KEYS[5], folded)
  end
end
local function display_of(holder)
  return string.match(holder, '^%S+ %S+ (.*)$')
end
"""

# Whether `looks` (a JSON list) holds a look-alike key of a name other than `folded`: the holder's
# display name, or nil.  KEYS[1], KEYS[4]: names, looks.
_TWIN = """
local function twin_of(looks, folded, also)
  for _, look in ipairs(looks) do
    local twin = redis.call('HGET', KEYS[4], look)
    if twin and twin ~= folded and twin ~= also then
      local holder = redis.call('HGET', KEYS[1], twin)
      if holder then
        return display_of(holder)
      end
    end
  end
  return nil
end
local function hold(folded, value, looks, token)
  redis.call('HSET', KEYS[1], folded, value)
  redis.call('SADD', KEYS[3], folded)
  for _, look in ipairs(looks) do
    redis.call('HSET', KEYS[4], look, folded)
  end
  redis.call('HSET', KEYS[5], folded, cjson.encode({t = token, l = looks}))
end
"""

# KEYS: names, events, owned, looks, claims, seq.  ARGV: folded, display, owner, ts, events_max,
# origin, connection, look-alike keys (JSON list), the new connection's token digest, the digest
# of the token shown ('' without one).
# Returns {1, members, event id, seq} when claimed (`seq`: the newest message before the join);
# {2, members, event id, seq, old holder} when the token shown was the holder's: the name is
# taken over, with a `left` (replaced) and a `joined`; {0, holder} when the name is taken and
# {3, display} when it looks like a name someone holds.
JOIN = (
    _RELEASE
    + _TWIN
    + """
local folded = ARGV[1]
local looks = cjson.decode(ARGV[8])
local holder = redis.call('HGET', KEYS[1], folded)
if holder then
  local claim = redis.call('HGET', KEYS[5], folded)
  if ARGV[10] == '' or not claim or cjson.decode(claim).t ~= ARGV[10] then
    return {0, holder}
  end
end
local twin = twin_of(looks, folded, nil)
if twin then
  return {3, twin}
end
local count = redis.call('HLEN', KEYS[1])
if holder then
  release(folded)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*',
             'type', 'left', 'name', display_of(holder), 'members', count - 1,
             'reason', 'replaced', 'ts', ARGV[4], 'origin', ARGV[6], 'holder', holder)
else
  count = count + 1
end
hold(folded, ARGV[3] .. ' ' .. ARGV[2], looks, ARGV[9])
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*',
           'type', 'joined', 'name', ARGV[2], 'members', count, 'ts', ARGV[4],
           'origin', ARGV[6], 'tag', ARGV[7])
local seq = tonumber(redis.call('GET', KEYS[6]) or '0')
if holder then
  return {2, count, id, seq, holder}
end
return {1, count, id, seq}
"""
)

# KEYS: names, events, owned, looks, claims.  ARGV: old folded, new folded, new display, owner,
# ts, events_max, origin, connection, the new name's look-alike keys (JSON list).
# Returns {1, event id} with a `renamed` added; {0, holder} when the new name is someone else's,
# {3, display} when it looks like someone else's, {4} when `owner` no longer holds the old name.
RENAME = (
    _RELEASE
    + _TWIN
    + """
local old, new = ARGV[1], ARGV[2]
local mine = ARGV[4] .. ' '
local holder = redis.call('HGET', KEYS[1], old)
if not holder or string.sub(holder, 1, #mine) ~= mine then
  return {4}
end
local other = redis.call('HGET', KEYS[1], new)
if other and new ~= old then
  return {0, other}
end
local looks = cjson.decode(ARGV[9])
local twin = twin_of(looks, new, old)
if twin then
  return {3, twin}
end
local token = cjson.decode(redis.call('HGET', KEYS[5], old) or '{"t": ""}').t
release(old)
hold(new, mine .. ARGV[3], looks, token)
return {1, redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*',
                      'type', 'renamed', 'old', display_of(holder), 'new', ARGV[3],
                      'ts', ARGV[5], 'origin', ARGV[7], 'tag', ARGV[8])}
"""
)

# KEYS: names, events.  ARGV: the recipient's folded name, sender, text, ts, events_max, origin.
# Adds a `private` for the process that holds the recipient (it delivers and deletes it: private
# messages are not kept); returns {1, recipient's display name} or {0} when nobody holds it.
DM = """
local holder = redis.call('HGET', KEYS[1], ARGV[1])
if not holder then
  return {0}
end
local display = string.match(holder, '^%S+ %S+ (.*)$')
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*',
           'type', 'private', 'from', ARGV[2], 'to', display, 'text', ARGV[3], 'ts', ARGV[4],
           'origin', ARGV[6], 'holder', holder)
return {1, display}
"""

# KEYS: names, events, owned, looks, claims.  ARGV: folded, owner, reason, ts, events_max, origin.
# Returns {1, members, event id}, or {0} when `owner` does not hold the name (nothing done).
LEAVE = (
    _RELEASE
    + """
local holder = redis.call('HGET', KEYS[1], ARGV[1])
local mine = ARGV[2] .. ' '
if not holder or string.sub(holder, 1, #mine) ~= mine then
  return {0}
end
release(ARGV[1])
local count = redis.call('HLEN', KEYS[1])
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*',
           'type', 'left', 'name', display_of(holder), 'members', count,
           'reason', ARGV[3], 'ts', ARGV[4], 'origin', ARGV[6], 'holder', holder)
return {1, count, id}
"""
)

# KEYS: names, events, owned (of the dead process), looks, claims.  ARGV: process, ts,
# events_max, origin.  Frees every name the process held in this room, each with a `left`
# (reason disconnected, and the holder, so that a process that was only cut off knows its
# members lost their names); returns how many.  Safe to run twice, or from two processes at
# once: a name is freed once.
FORGET_PROCESS = (
    _RELEASE
    + """
local prefix = ARGV[1] .. ' '
local gone = 0
for _, folded in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local holder = redis.call('HGET', KEYS[1], folded)
  if holder and string.sub(holder, 1, #prefix) == prefix then
    release(folded)
    local count = redis.call('HLEN', KEYS[1])
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*',
               'type', 'left', 'name', display_of(holder), 'members', count,
               'reason', 'disconnected', 'ts', ARGV[2], 'origin', ARGV[4], 'holder', holder)
    gone = gone + 1
  end
end
redis.call('DEL', KEYS[3])
return gone
"""
)

# KEYS: seq, history.  ARGV: the newest `seq` this process has seen.  The counter is never
# below the newest message kept nor the newest seen (a counter lost, with or without the
# history, would otherwise give old numbers again); returns the counter.
RAISE_SEQ = """
local newest = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
local seen = tonumber(ARGV[1] or '0')
if seen > seq then
  redis.call('SET', KEYS[1], seen)
  seq = seen
end
if newest[1] then
  local top = tonumber(string.match(newest[1][1], '^0%-(%d+)$'))
  if top and top > seq then
    redis.call('SET', KEYS[1], top)
    seq = top
  end
end
return seq
"""
