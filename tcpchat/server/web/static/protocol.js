// The page's side of the wire (PROTOCOL.md, "WebSocket (browsers)"): one socket at a time,
// the `hello` that resumes (`since`, `token`), the says waiting for their `ack` (resent with the
// same `id` after a reconnect, which the server delivers at most once), the keepalive, and the
// backoff between tries.  No DOM here: the page hears events and state changes through handlers.

export const FIRST_DELAY = 1000; // ms before the first reconnect
export const MOST_DELAY = 30000; // the longest wait between tries
const JITTER = 0.25; // a wait is stretched by up to this much at random
const PING_AFTER = 30000; // silence before a `ping` (as the terminal client)
const PONG_GRACE = 15000; // silence after it before the socket is given up
// Refusals after which the server closes: only a full server is worth retrying by itself.
const FATAL = new Set(['version_unsupported', 'auth_failed', 'auth_required', 'server_full']);
const NAME_REFUSED = new Set(['bad_name', 'name_taken']);

/** The WebSocket address of the page's own server. */
export function socketUrl(loc = window.location) {
  return (loc.protocol === 'https:' ? 'wss://' : 'ws://') + loc.host + '/ws';
}

/** Milliseconds before reconnect try number `attempt` (0 first): doubling, capped, jittered. */
export function backoff(attempt, random = Math.random) {
  const base = Math.min(MOST_DELAY, FIRST_DELAY * 2 ** Math.min(attempt, 16));
  return Math.round(Math.min(MOST_DELAY, base * (1 + JITTER * random())));
}

/** Ids unique to this page: a random prefix and a counter. */
function idMaker() {
  const bytes = new Uint8Array(6);
  crypto.getRandomValues(bytes);
  const prefix = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  let n = 0;
  return (kind) => `${kind}-${prefix}-${++n}`;
}

/**
 * A chat session that outlives its sockets.
 * handlers.event(obj) gets every server event; handlers.state(state, detail) gets
 * 'connecting', 'joined', 'reconnecting' (detail: ms to wait), 'out' (detail: the error or
 * shutdown that ended it, or null when the socket closed before joining).
 */
export class Chat {
  constructor(handlers, url = socketUrl()) {
    this.handlers = handlers;
    this.url = url;
    this.nextId = idMaker();
    this.ws = null;
    this.joined = false; // this socket's hello was welcomed
    this.resuming = false; // a session exists: a lost socket is reconnected
    this.name = '';
    this.password = '';
    this.token = null;
    this.lastSeq = null; // the newest seq seen (messages, acks, welcome)
    this.pending = new Map(); // id -> the say or dm sent and not yet acknowledged
    this.attempt = 0;
    this.timer = null;
    this.keepalive = null;
    this.lastHeard = 0;
    this.pinged = false; // a ping went out in this silence
    this.ended = null; // the refusal or shutdown that ends this socket, if one came
  }

  /** Join (or join again after a refusal) as `name`: on this socket if it is open, else a new one. */
  join(name, password = '') {
    if (name.normalize('NFKC').toLowerCase() !== this.name.normalize('NFKC').toLowerCase()) {
      this.token = null; // a token takes back only the name it came with
    }
    this.name = name;
    this.password = password;
    this.cancelRetry();
    if (this.ws && this.ws.readyState === WebSocket.OPEN && !this.joined) this.hello();
    else this.open();
  }

  /** Seen a seq: the next hello resumes after the newest. */
  saw(seq) {
    if (typeof seq === 'number' && (this.lastSeq === null || seq > this.lastSeq)) this.lastSeq = seq;
  }

  /** The server's history started again (another server, or one that keeps none): follow it. */
  restartAt(seq) {
    this.lastSeq = seq;
  }

  /** Send one event if joined; false when it could not be sent now. */
  send(event) {
    if (!this.joined || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(event));
    return true;
  }

  /** A request with an id of its own (`history`, `search`): the id, or null when offline. */
  request(type, fields = {}) {
    const id = this.nextId(type);
    return this.send({ type, ...fields, id }) ? id : null;
  }

  /** A message to everyone: kept until its ack, sent now or as soon as the page is back. */
  say(text, me = false) {
    const id = this.nextId('say');
    const event = me ? { type: 'say', text, me: true, id } : { type: 'say', text, id };
    this.pending.set(id, event);
    this.send(event);
    return id;
  }

  /** A private message: sent only while connected (the server keeps no `dm` ids). */
  dm(to, text) {
    const id = this.nextId('dm');
    const event = { type: 'dm', to, text, id };
    if (!this.send(event)) return null;
    this.pending.set(id, event);
    return id;
  }

  /** Send a refused say again, with its id (a refused say does not use its id up). */
  retry(id) {
    const event = this.pending.get(id);
    if (event) this.send(event);
  }

  forget(id) {
    this.pending.delete(id);
  }

  /** Leave for good: `bye`, and no reconnect. */
  leave() {
    this.resuming = false;
    this.cancelRetry();
    if (this.joined) this.send({ type: 'bye' });
  }

  /** Try now rather than at the end of the wait (the browser says it is online again). */
  retryNow() {
    if (this.timer !== null) {
      this.cancelRetry();
      this.open();
    }
  }

  open() {
    this.drop();
    this.handlers.state(this.resuming ? 'reconnecting' : 'connecting', 0);
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this.joined = false;
    ws.onopen = () => {
      this.heard();
      this.hello();
      this.keepalive = setInterval(() => this.checkAlive(), 5000);
    };
    ws.onmessage = (frame) => {
      this.heard();
      let event;
      try {
        event = JSON.parse(frame.data);
      } catch {
        return;
      }
      if (event && typeof event === 'object' && typeof event.type === 'string') this.receive(event);
    };
    ws.onclose = () => {
      if (this.ws === ws) this.lost(null);
    };
  }

  hello() {
    const hello = { type: 'hello', name: this.name, version: 1 };
    if (this.password) hello.password = this.password;
    if (this.lastSeq !== null) hello.since = this.lastSeq;
    if (this.token) hello.token = this.token;
    this.ws.send(JSON.stringify(hello));
  }

  receive(event) {
    switch (event.type) {
      case 'welcome':
        this.joined = true;
        this.resuming = true;
        this.attempt = 0;
        this.name = event.name;
        this.token = event.token;
        this.handlers.state('joined', null);
        this.handlers.event(event); // may ask for history first: it then misses our resent says
        for (const pending of this.pending.values()) if (pending.type === 'say') this.send(pending);
        this.saw(event.seq);
        return;
      case 'message':
        this.saw(event.seq);
        break;
      case 'ack':
        this.saw(event.seq);
        this.pending.delete(event.id);
        break;
      case 'renamed':
        if (event.old === this.name) this.name = event.new;
        break;
      case 'error':
        this.refused(event);
        break;
      case 'shutdown':
        this.ended = event;
        break;
      default:
    }
    this.handlers.event(event);
  }

  refused(error) {
    const said = error.id && this.pending.get(error.id);
    if (said && said.type === 'dm') this.pending.delete(error.id);
    if (this.joined) return;
    if (FATAL.has(error.code)) this.ended = error;
    if (NAME_REFUSED.has(error.code) || (FATAL.has(error.code) && error.code !== 'server_full')) {
      this.resuming = false; // a person must choose: the login form asks
    }
  }

  /** The socket is gone: wait and reconnect if a session is on, else tell the page. */
  lost() {
    const ended = this.ended || null;
    const removed = ended && ended.type === 'shutdown' && ended.reason;
    this.drop();
    for (const [id, event] of this.pending) if (event.type === 'dm') this.pending.delete(id);
    if (this.resuming && !removed) {
      const wait = backoff(this.attempt++);
      this.timer = setTimeout(() => {
        this.timer = null;
        this.open();
      }, wait);
      this.handlers.state('reconnecting', wait);
    } else {
      this.resuming = false;
      this.handlers.state('out', ended);
    }
  }

  drop() {
    clearInterval(this.keepalive);
    this.keepalive = null;
    this.ended = null;
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onopen = ws.onmessage = ws.onclose = null;
      if (ws.readyState <= WebSocket.OPEN) ws.close();
    }
    this.joined = false;
  }

  cancelRetry() {
    clearTimeout(this.timer);
    this.timer = null;
  }

  heard() {
    this.lastHeard = Date.now();
    this.pinged = false;
  }

  checkAlive() {
    const silent = Date.now() - this.lastHeard;
    if (silent >= PING_AFTER + PONG_GRACE) {
      this.lost(); // a dead network may never close the socket by itself
    } else if (silent >= PING_AFTER && !this.pinged && this.ws.readyState === WebSocket.OPEN) {
      this.pinged = true;
      this.ws.send(JSON.stringify({ type: 'ping', id: this.nextId('ping') }));
    }
  }
}
