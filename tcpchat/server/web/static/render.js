// Elements for what the server says.  Everything a server or a person wrote goes in as text
// (textContent, text nodes): never as HTML, whatever it holds.

import { fold } from './commands.js';

/** An element with classes and, optionally, text. */
export function el(tag, className = '', text = null) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== null) node.textContent = text;
  return node;
}

/** A stable hue for a name: FNV-1a of its folded form, so `Alice` and `ALICE` look alike. */
export function hue(name) {
  let hash = 0x811c9dc5;
  for (const ch of fold(name)) {
    hash ^= ch.codePointAt(0);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % 360;
}

/** A name in its colour, isolated from the text around it (names may be right-to-left). */
export function nameEl(name, className = 'name') {
  const node = el('bdi', className, name);
  node.style.setProperty('--hue', String(hue(name)));
  return node;
}

function pad(n) {
  return String(n).padStart(2, '0');
}

/** A `ts` as local HH:MM, with the whole date in its tooltip; `withDate` adds the day. */
export function timeEl(ts, withDate = false) {
  const date = ts ? new Date(ts) : new Date();
  const valid = !Number.isNaN(date.getTime());
  const day = valid ? `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` : '';
  const hhmm = valid ? `${pad(date.getHours())}:${pad(date.getMinutes())}` : '--:--';
  const node = el('time', 'time', withDate ? `${day} ${hhmm}` : hhmm);
  if (valid) {
    node.dateTime = date.toISOString();
    node.title = date.toLocaleString();
  }
  return node;
}

/** A line of the list: its time, then a body that holds the rest (and wraps beside the time). */
function line(className, ts, data = null) {
  const node = el('div', className);
  if (data !== null) node.dataset.seq = String(data);
  const body = el('span', 'body');
  node.append(timeEl(ts), body);
  return [node, body];
}

/** A message to everyone: `time name: text`, or `time * name text` for an action. */
export function messageEl(message, ownName) {
  const own = message.from === ownName;
  const seq = typeof message.seq === 'number' ? message.seq : null;
  const [node, body] = line(`message${message.me ? ' me' : ''}${own ? ' own' : ''}`, message.ts, seq);
  if (message.me) body.append(el('span', 'star', '* '));
  body.append(nameEl(message.from, 'name from'));
  body.append(message.me ? ' ' : el('span', 'colon', ': '));
  body.append(el('span', 'text', message.text));
  return node;
}

/** Our own message, shown at once and marked pending until the server's ack. */
export function ownMessageEl(text, me, name) {
  const node = messageEl({ from: name, text, me, ts: null }, name);
  node.classList.add('own', 'pending');
  node.lastElementChild.append(el('span', 'delivery', 'sending…'));
  return node;
}

/** A private message, set apart: who sent it to whom. */
export function privateEl(event, ownName) {
  const own = event.from === ownName;
  const [node, body] = line(`private${own ? ' own' : ''}`, event.ts);
  body.append(el('span', 'tag', 'private'), ' ');
  if (own) body.append(el('span', 'quiet', 'to '), nameEl(event.to, 'name'));
  else body.append(nameEl(event.from, 'name from'));
  body.append(el('span', 'colon', ': '), el('span', 'text', event.text));
  if (own) body.append(el('span', 'delivery', 'sending…'));
  return node;
}

/** A join, leave or rename, as a quiet line. */
export function systemText(event) {
  switch (event.type) {
    case 'joined':
      return [event.name, ` joined (${event.members} online)`];
    case 'left': {
      const why = event.reason && event.reason !== 'quit' ? `, ${event.reason}` : '';
      return [event.name, ` left (${event.members} online${why})`];
    }
    case 'renamed':
      return [event.old, ' is now ', event.new];
    default:
      return [];
  }
}

/** One line of a run of joins and leaves. */
export function systemEl(event) {
  const node = el('li', 'system-line');
  node.append(timeEl(event.ts), ' ');
  const parts = systemText(event);
  parts.forEach((part, i) => node.append(i % 2 === 0 ? nameEl(part) : part));
  return node;
}

/** A line from the page itself (help, errors, notices): text, quiet. */
export function noticeEl(text, kind = 'notice') {
  const [node, body] = line(kind, null);
  body.append(el('span', 'text', text));
  return node;
}

/** A search result: the message with its day and time. */
export function resultEl(message) {
  const node = el('li', 'result');
  node.append(timeEl(message.ts, true), ' ');
  if (message.me) node.append('* ');
  node.append(nameEl(message.from, 'name from'), message.me ? ' ' : ': ');
  node.append(el('span', 'text', message.text));
  return node;
}
