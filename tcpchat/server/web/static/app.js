// tcpchat's chat page: what a person sees and does; the wire is protocol.js's.
//
// Hooks for browser tests (element ids unless said):
//   login: #name, #password (its row #password-row shows when the server wants one), #join,
//     #login-error; #status: "connecting…", "connected", "reconnecting…", "not connected".
//   #messages: a message to everyone is `.message[data-seq]` (an action also `.me`); own ones
//     are `.own` with a `.delivery` mark: "sending…", then "✓ delivered to N" (`.pending`
//     until then); private messages are `.private` (own ones `.own` with `.delivery`); joins,
//     leaves and renames are `.system-line` in a `.system-run` (toggle: `.run-toggle`); the
//     page's own lines are `.notice` (`.problem` for errors); `#new-divider` marks new messages.
//   #older (loads older messages), #members (an `li[data-name]` each), #member-count,
//   #members-toggle (narrow screens), #input, #send, #counter, #search, #results-panel,
//   #results (an `li.result` each), #results-close, #notify, #announcer (the live region).

import { Chat } from './protocol.js';
import { COMMANDS, ESCAPE_HINT, completions, fold, length, mentions, parseTyped } from './commands.js';
import {
  el,
  messageEl,
  nameEl,
  noticeEl,
  ownMessageEl,
  privateEl,
  resultEl,
  systemEl,
  timeEl,
} from './render.js';

const $ = (id) => document.getElementById(id);
const ui = {
  layer: $('login-layer'),
  login: $('login'),
  name: $('name'),
  passwordRow: $('password-row'),
  password: $('password'),
  join: $('join'),
  loginError: $('login-error'),
  loginServer: $('login-server'),
  header: document.querySelector('.topbar'),
  layout: document.querySelector('.layout'),
  title: $('room-title'),
  status: $('status'),
  notify: $('notify'),
  sidebar: $('sidebar'),
  membersToggle: $('members-toggle'),
  memberBadge: $('member-badge'),
  members: $('members'),
  memberCount: $('member-count'),
  older: $('older'),
  olderStatus: $('older-status'),
  messages: $('messages'),
  composer: $('composer'),
  input: $('input'),
  send: $('send'),
  counter: $('counter'),
  searchForm: $('search-form'),
  search: $('search'),
  panel: $('results-panel'),
  resultsHeading: $('results-heading'),
  results: $('results'),
  resultsClose: $('results-close'),
  announcer: $('announcer'),
};

const OLDER_PAGE = 50;
const FILL_MOST = 500; // the most one `history` request gets
const RUN_FOLDS = 3; // a run of joins and leaves this long folds into one line

const page = {
  name: '',
  members: [],
  count: 0,
  maxText: 1024,
  placed: [], // {seq, node} of the messages of this history, by seq
  seen: new Map(), // seq -> node
  epochStart: null, // the line above which the messages of an earlier history sit
  more: null, // older messages exist (null: not known)
  olderId: null, // the history request in flight for scrolling back
  fillId: null, // the history request that fills a restarted server's history
  own: new Map(), // id -> our message waiting for its ack
  unread: 0,
  baseTitle: 'tcpchat',
  askedWho: false,
  searchId: null,
  searchText: '',
  completion: null,
  quitting: false,
  fromLogin: false, // the next welcome answers the login form (not a reconnect)
};

const chat = new Chat({ event: onEvent, state: onState });

// ---- the message list ------------------------------------------------------------------

function nearBottom() {
  const m = ui.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 48;
}

function scrollToBottom() {
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

/** Change the list, staying at the bottom if the person was there. */
function keepingBottom(change) {
  const atBottom = nearBottom();
  const result = change();
  if (atBottom) scrollToBottom();
  return result;
}

function firstPending() {
  return ui.messages.querySelector(':scope > .pending');
}

/** Put a message where its seq says; `older` ones with no neighbour go to this history's top. */
function place(node, seq, older = false) {
  const list = page.placed;
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid].seq < seq) lo = mid + 1;
    else hi = mid;
  }
  let before;
  if (lo < list.length) before = list[lo].node;
  else if (older && list.length === 0) {
    before = page.epochStart ? page.epochStart.nextSibling : ui.messages.firstChild;
  } else before = firstPending();
  ui.messages.insertBefore(node, before || null);
  list.splice(lo, 0, { seq, node });
  page.seen.set(seq, node);
}

/** A message to everyone, unless already shown; `live` ones are news (announced, counted). */
function addMessage(message, live, older = false) {
  if (typeof message.seq !== 'number' || page.seen.has(message.seq)) return;
  const node = messageEl(message, page.name);
  const mention = message.from !== page.name && mentions(message.text, page.name);
  if (mention) node.classList.add('mention');
  place(node, message.seq, older);
  if (live && message.from !== page.name) {
    const said = message.me ? `* ${message.from} ${message.text}` : `${message.from}: ${message.text}`;
    arrived(node, said, mention ? `${message.from} mentioned you` : null, message.text);
  }
}

function addPrivate(event) {
  const node = privateEl(event, page.name);
  keepingBottom(() => ui.messages.insertBefore(node, firstPending()));
  arrived(node, `private from ${event.from}: ${event.text}`, `${event.from} (private)`, event.text);
}

/** A line from the page itself at the end of the list. */
function notice(text, kind = 'notice') {
  const node = noticeEl(text, kind);
  keepingBottom(() => ui.messages.append(node));
  return node;
}

/** A join, leave or rename: a quiet line, in a run that folds when it grows. */
function addSystem(event) {
  keepingBottom(() => {
    let run = ui.messages.lastElementChild;
    if (!run || !run.classList.contains('system-run')) {
      run = el('div', 'system-run collapsed');
      const toggle = el('button', 'run-toggle');
      toggle.type = 'button';
      toggle.hidden = true;
      toggle.setAttribute('aria-expanded', 'false');
      toggle.addEventListener('click', () => {
        const open = run.classList.toggle('collapsed') === false;
        toggle.setAttribute('aria-expanded', String(open));
      });
      run.append(toggle, el('ul', 'system-lines'));
      ui.messages.append(run);
    }
    const lines = run.lastElementChild;
    lines.append(systemEl(event));
    const n = lines.childElementCount;
    const toggle = run.firstElementChild;
    toggle.hidden = n < RUN_FOLDS;
    toggle.textContent = `${n} joins, leaves and renames`;
  });
}

/** Something new for the person: read out, counted while the tab is hidden, maybe notified. */
function arrived(node, said, alert, body) {
  announce(said);
  if (document.hidden) {
    if (page.unread === 0) markNew(node);
    page.unread += 1;
    showTitle();
  }
  if (alert) desktopNotice(alert, body);
}

function markNew(node) {
  const divider = $('new-divider') || el('div', 'new-divider', 'New messages');
  divider.id = 'new-divider';
  divider.setAttribute('role', 'separator');
  node.before(divider);
}

function announce(text) {
  ui.announcer.append(el('p', '', text));
  while (ui.announcer.childElementCount > 5) ui.announcer.firstElementChild.remove();
}

function showTitle() {
  document.title = page.unread ? `(${page.unread}) ${page.baseTitle}` : page.baseTitle;
}

/** The server's history started again: what is shown stays, above a line that says so. */
function newHistory() {
  page.placed = [];
  page.seen = new Map();
  page.more = null;
  page.epochStart = notice('The server started a new history: the messages above are from before.');
}

// ---- older messages ---------------------------------------------------------------------

function loadOlder() {
  if (page.olderId || page.more === false || !chat.joined) return;
  const oldest = page.placed.length ? page.placed[0].seq : undefined;
  if (oldest === 1) {
    page.more = false;
    showOlder();
    return;
  }
  const fields = oldest === undefined ? { limit: OLDER_PAGE } : { before: oldest, limit: OLDER_PAGE };
  page.olderId = chat.request('history', fields);
  showOlder();
}

function showOlder() {
  const done = page.more === false;
  ui.older.hidden = done;
  ui.older.disabled = !chat.joined || page.olderId !== null;
  ui.olderStatus.textContent = done ? 'This is the start of the history.' : page.olderId ? 'Loading…' : '';
}

function gotHistory(event) {
  if (event.id === page.fillId) {
    page.fillId = null;
    keepingBottom(() => event.messages.forEach((m) => addMessage(m, true)));
    return;
  }
  if (event.id !== page.olderId) return;
  page.olderId = null;
  page.more = Boolean(event.more);
  const m = ui.messages;
  const height = m.scrollHeight;
  const top = m.scrollTop;
  for (const message of event.messages) addMessage(message, false, true);
  m.scrollTop = top + (m.scrollHeight - height);
  showOlder();
}

// ---- members ----------------------------------------------------------------------------

function byFold(a, b) {
  const fa = fold(a);
  const fb = fold(b);
  return fa < fb ? -1 : fa > fb ? 1 : 0;
}

function setMembers(names, count) {
  page.members = [...names].sort(byFold);
  page.count = typeof count === 'number' ? count : page.members.length;
  showMembers();
}

function showMembers() {
  ui.members.replaceChildren(
    ...page.members.map((name) => {
      const item = el('li', name === page.name ? 'member self' : 'member');
      item.dataset.name = name;
      item.append(nameEl(name));
      if (name === page.name) item.append(el('span', 'quiet', ' (you)'));
      return item;
    }),
  );
  ui.memberCount.textContent = String(page.count);
  ui.memberBadge.textContent = String(page.count);
}

function memberJoined(event) {
  if (!page.members.includes(event.name)) page.members = [...page.members, event.name].sort(byFold);
  page.count = event.members;
  showMembers();
  addSystem(event);
}

function memberLeft(event) {
  page.members = page.members.filter((name) => name !== event.name);
  page.count = event.members;
  showMembers();
  addSystem(event);
}

function memberRenamed(event) {
  if (event.old === page.name) {
    page.name = event.new;
    rememberName(event.new);
  }
  page.members = page.members.map((name) => (name === event.old ? event.new : name)).sort(byFold);
  showMembers();
  addSystem(event);
}

// ---- what the server says ---------------------------------------------------------------

function onEvent(event) {
  switch (event.type) {
    case 'welcome':
      return welcome(event);
    case 'message':
      return keepingBottom(() => addMessage(event, true));
    case 'private':
      return addPrivate(event);
    case 'joined':
      return memberJoined(event);
    case 'left':
      return memberLeft(event);
    case 'renamed':
      return memberRenamed(event);
    case 'members':
      setMembers(event.names, event.members);
      if (page.askedWho) {
        page.askedWho = false;
        notice(`${event.members} online: ${event.names.join(', ')}`);
      }
      return undefined;
    case 'ack':
      return acknowledged(event);
    case 'history':
      return gotHistory(event);
    case 'results':
      return gotResults(event);
    case 'error':
      return refused(event);
    case 'shutdown':
      return notice(`! ${event.message}`, 'notice problem');
    default:
      return undefined;
  }
}

function welcome(event) {
  const resumed = chat.lastSeq !== null;
  const restarted = event.gap && resumed && event.seq < chat.lastSeq;
  page.name = event.name;
  page.maxText = event.max_text || page.maxText;
  page.baseTitle = event.server ? `${event.server} · tcpchat` : 'tcpchat';
  ui.title.textContent = event.server || 'tcpchat';
  showTitle();
  rememberName(event.name);
  setMembers(event.names || [], event.members);
  if (restarted) {
    newHistory();
    chat.restartAt(event.seq);
  }
  keepingBottom(() => {
    for (const message of event.history || []) addMessage(message, resumed);
  });
  if (restarted) {
    // What the new history holds is all new here: ask for it (the welcome's is empty).
    if (event.seq > 0) page.fillId = chat.request('history', { limit: FILL_MOST });
  } else if (event.gap && resumed) {
    notice('Some messages sent while you were away are no longer kept; scroll up for what is.');
  }
  if (!resumed && event.motd) notice(event.motd, 'notice motd');
  if (page.fromLogin) {
    page.fromLogin = false;
    notice(`You joined as ${event.name}. Type /help for the commands.`);
    scrollToBottom();
  }
  const oldest = page.placed.length ? page.placed[0].seq : event.seq + 1;
  if (page.more === null && oldest <= 1) page.more = false; // nothing older exists
  for (const [id, node] of page.own) if (chat.pending.has(id)) mark(node, 'sending…');
  showOlder();
  counter();
}

function mark(node, text) {
  const delivery = node.querySelector('.delivery');
  if (delivery) delivery.textContent = text;
}

function acknowledged(event) {
  const node = page.own.get(event.id);
  if (!node) return;
  page.own.delete(event.id);
  node.classList.remove('pending', 'failed');
  node.querySelector('.retry')?.remove();
  mark(node, `✓ delivered to ${event.delivered}`);
  if (typeof event.seq !== 'number') return;
  keepingBottom(() => {
    node.querySelector('time').replaceWith(timeEl(event.ts));
    const shown = page.seen.get(event.seq);
    if (shown) {
      // Shown already, from the history of a resumed session: that one stays.
      node.remove();
      shown.classList.add('own');
      shown.lastElementChild.append(node.querySelector('.delivery'));
      return;
    }
    node.dataset.seq = String(event.seq);
    node.remove();
    place(node, event.seq);
  });
}

function refused(error) {
  const own = error.id ? page.own.get(error.id) : null;
  if (own) {
    own.classList.remove('pending');
    own.classList.add('failed');
    mark(own, `✗ not sent: ${error.message}`);
    if (error.code === 'unavailable' && chat.pending.has(error.id)) {
      const again = el('button', 'retry', 'Send again');
      again.type = 'button';
      again.addEventListener('click', () => {
        again.remove();
        own.classList.replace('failed', 'pending');
        mark(own, 'sending…');
        chat.retry(error.id);
      });
      own.lastElementChild.append(again);
    } else {
      page.own.delete(error.id);
      chat.forget(error.id);
    }
    return;
  }
  if (error.id && error.id === page.olderId) {
    page.olderId = null;
    showOlder();
    ui.olderStatus.textContent = error.message;
    return;
  }
  if (error.id && error.id === page.searchId) {
    ui.resultsHeading.textContent = error.message;
    return;
  }
  if (!chat.joined && chat.resuming) {
    ui.status.title = error.message; // a full server: the next try may find room
    return;
  }
  if (!chat.joined) {
    const password = error.code === 'auth_failed' || error.code === 'auth_required';
    const sentence =
      password && ui.passwordRow.hidden ? 'This server needs a password.' : error.message;
    showLogin(sentence, password);
    return;
  }
  notice(`! ${error.message}`, 'notice problem');
}

// ---- connection state -------------------------------------------------------------------

function onState(state, detail) {
  ui.status.classList.remove('ok', 'wait');
  if (state === 'connecting') {
    ui.status.textContent = 'connecting…';
  } else if (state === 'joined') {
    ui.status.textContent = 'connected';
    ui.status.classList.add('ok');
    ui.status.title = '';
    hideLogin();
  } else if (state === 'reconnecting') {
    ui.status.textContent = 'reconnecting…';
    ui.status.classList.add('wait');
    if (detail) ui.status.title = `next try in ${Math.ceil(detail / 1000)} s`;
    unsent();
  } else {
    ui.status.textContent = 'not connected';
    unsent();
    const sentence = page.quitting
      ? 'You left the chat.'
      : detail
        ? detail.message
        : 'The connection closed before you joined; is the server running?';
    page.quitting = false;
    if (detail && detail.type === 'error' && ui.layer.hidden === false) {
      ui.join.disabled = false; // the refusal is on the form already
    } else {
      showLogin(sentence, false);
    }
  }
  if (state === 'joined') ui.input.disabled = ui.send.disabled = false;
  showOlder();
}

/** Our messages without a connection: says wait to be resent, private ones are lost. */
function unsent() {
  for (const [id, node] of page.own) {
    if (chat.pending.has(id)) mark(node, 'waiting for the connection…');
    else if (node.classList.contains('private')) {
      page.own.delete(id);
      node.classList.replace('pending', 'failed');
      mark(node, '✗ not sent: the connection was lost');
    }
  }
}

// ---- the login form ---------------------------------------------------------------------

function showLogin(sentence, password) {
  ui.layer.hidden = false;
  ui.header.inert = true;
  ui.layout.inert = true;
  ui.loginError.textContent = sentence || '';
  ui.join.disabled = false;
  if (password) ui.passwordRow.hidden = false;
  if (!ui.name.value) ui.name.value = page.name || storedName();
  const focus = password ? ui.password : ui.name;
  focus.focus();
  focus.select();
}

function hideLogin() {
  if (ui.layer.hidden) return;
  ui.layer.hidden = true;
  ui.header.inert = false;
  ui.layout.inert = false;
  ui.loginError.textContent = '';
  ui.input.focus();
}

function storedName() {
  try {
    return localStorage.getItem('tcpchat.name') || '';
  } catch {
    return '';
  }
}

function rememberName(name) {
  try {
    localStorage.setItem('tcpchat.name', name);
  } catch {
    // storage may be off: the name is only a convenience
  }
}

ui.login.addEventListener('submit', (event) => {
  event.preventDefault();
  const name = ui.name.value.trim();
  if (!name) {
    ui.loginError.textContent = 'Type the name you want to be seen as.';
    ui.name.focus();
    return;
  }
  ui.loginError.textContent = '';
  ui.join.disabled = true;
  page.fromLogin = true;
  chat.join(name, ui.password.value);
});

// ---- typing -----------------------------------------------------------------------------

function counter() {
  const n = length(ui.input.value);
  const near = page.maxText - Math.max(50, Math.floor(page.maxText / 10));
  ui.counter.hidden = n < near;
  ui.counter.textContent = `${n} / ${page.maxText}`;
  ui.counter.classList.toggle('over', n > page.maxText);
  ui.input.rows = Math.min(8, ui.input.value.split('\n').length);
}

function submit() {
  const typed = parseTyped(ui.input.value);
  if (!typed) return;
  if (act(typed)) {
    ui.input.value = '';
    counter();
  }
}

/** Do what a typed line asks; false when it could not go now (the line stays, to send again). */
function act(typed) {
  const offline = 'Not connected: wait for “connected” and try again.';
  switch (typed.kind) {
    case 'say':
      return say(typed.text, typed.me);
    case 'dm':
      return privateMessage(typed.to, typed.text);
    case 'nick':
      return chat.send({ type: 'nick', name: typed.name }) || problem(offline);
    case 'who':
      page.askedWho = chat.send({ type: 'who' });
      return page.askedWho || problem(offline);
    case 'search':
      runSearch(typed.text);
      return true;
    case 'quit':
      page.quitting = true;
      chat.leave();
      return true;
    case 'help':
      for (const [usage, meta] of COMMANDS) notice(`${usage.padEnd(15)} ${meta}`, 'notice help');
      notice(ESCAPE_HINT, 'notice help');
      notice('Enter sends, Shift+Enter starts a new line, Tab completes a name, Escape closes panels.', 'notice help');
      return true;
    default:
      problem(typed.sentence); // a command typed wrong: the usage says how, the line goes
      return true;
  }
}

function problem(sentence) {
  notice(`! ${sentence}`, 'notice problem');
  return false;
}

function tooLong(text) {
  const n = length(text);
  if (n <= page.maxText) return false;
  problem(`message too long (${n} > ${page.maxText} characters)`);
  return true;
}

function say(text, me) {
  if (tooLong(text)) return false;
  const id = chat.say(text, me);
  const node = ownMessageEl(text, me, page.name);
  node.dataset.id = id;
  if (!chat.joined) mark(node, 'waiting for the connection…');
  page.own.set(id, node);
  $('new-divider')?.remove();
  ui.messages.append(node);
  scrollToBottom();
  return true;
}

function privateMessage(to, text) {
  if (tooLong(text)) return false;
  const id = chat.dm(to, text);
  if (id === null) return problem('Not connected: a private message is sent only while connected.');
  const node = privateEl({ from: page.name, to, text, ts: null }, page.name);
  node.classList.add('pending');
  page.own.set(id, node);
  ui.messages.append(node);
  scrollToBottom();
  return true;
}

/** Tab: the member names that start with the word before the caret, in turn. */
function complete(event) {
  const input = ui.input;
  let c = page.completion;
  if (!(c && input.value === c.result && input.selectionStart === c.caret)) {
    const others = page.members.filter((name) => name !== page.name);
    const found = completions(input.value, input.selectionStart, others);
    if (!found) return; // Tab moves on, as everywhere
    c = { ...found, original: input.value, index: -1 };
  }
  event.preventDefault();
  c.index = (c.index + 1) % c.names.length;
  const name = c.names[c.index];
  const suffix = c.start === 0 ? ': ' : ' ';
  input.value = c.original.slice(0, c.start) + name + suffix + c.original.slice(c.end);
  c.caret = c.start + name.length + suffix.length;
  input.setSelectionRange(c.caret, c.caret);
  c.result = input.value;
  page.completion = c;
  counter();
}

ui.input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    submit();
  } else if (event.key === 'Tab' && !event.shiftKey && !event.ctrlKey && !event.altKey) {
    complete(event);
  }
});
ui.input.addEventListener('input', counter);
ui.composer.addEventListener('submit', (event) => {
  event.preventDefault();
  submit();
  ui.input.focus();
});

// ---- search -----------------------------------------------------------------------------

function runSearch(text) {
  page.searchText = text;
  ui.results.replaceChildren();
  ui.panel.hidden = false;
  page.searchId = chat.request('search', { text, limit: 50 });
  ui.resultsHeading.textContent = page.searchId
    ? `Searching for “${text}”…`
    : 'Not connected: search when “connected” shows.';
}

function gotResults(event) {
  if (event.id !== page.searchId) return;
  const n = event.messages.length;
  ui.resultsHeading.textContent = n
    ? `${n} message${n === 1 ? '' : 's'} with “${page.searchText}” (newest first)`
    : `No message holds every word of “${page.searchText}”.`;
  ui.results.replaceChildren(...event.messages.map(resultEl));
}

function closeResults() {
  const inside = ui.panel.contains(document.activeElement);
  ui.panel.hidden = true;
  page.searchId = null;
  if (inside) ui.search.focus();
}

ui.searchForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = ui.search.value.trim();
  if (text) runSearch(text);
});
ui.resultsClose.addEventListener('click', closeResults);

// ---- the page around ---------------------------------------------------------------------

function toggleMembers(open) {
  ui.sidebar.classList.toggle('open', open);
  ui.membersToggle.setAttribute('aria-expanded', String(open));
}

ui.membersToggle.addEventListener('click', () => {
  const open = !ui.sidebar.classList.contains('open');
  toggleMembers(open);
  if (open) ui.sidebar.querySelector('h2').focus();
});
ui.sidebar.querySelector('h2').tabIndex = -1;

document.addEventListener('keydown', (event) => {
  if (event.key !== 'Escape') return;
  if (!ui.panel.hidden) {
    closeResults();
  } else if (ui.sidebar.classList.contains('open')) {
    toggleMembers(false);
    ui.membersToggle.focus();
  }
});

ui.older.addEventListener('click', loadOlder);
ui.messages.addEventListener('scroll', () => {
  if (ui.messages.scrollTop < 40 && ui.messages.scrollHeight > ui.messages.clientHeight) loadOlder();
});

document.addEventListener('visibilitychange', () => {
  if (!document.hidden) {
    page.unread = 0;
    showTitle();
  }
});
window.addEventListener('online', () => chat.retryNow());

// Desktop notices: only once the person asked for them with the button.
function desktopNotice(title, body) {
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  if (!document.hidden && document.hasFocus()) return;
  const shown = new Notification(title, { body, tag: 'tcpchat' });
  shown.addEventListener('click', () => {
    window.focus();
    shown.close();
  });
}

if ('Notification' in window && Notification.permission === 'default') {
  ui.notify.hidden = false;
  ui.notify.addEventListener('click', async () => {
    const answer = await Notification.requestPermission();
    ui.notify.hidden = answer !== 'default';
    if (answer === 'denied') notice('This browser blocks notifications for this page.');
    if (answer === 'granted') notice('You will be notified of mentions and private messages.');
  });
}

showLogin('', false);
ui.loginServer.textContent = `on ${window.location.host}`;
counter();
