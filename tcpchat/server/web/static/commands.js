// The lines a person types: the terminal's and plain mode's slash commands, typed the same way
// (`/nick NAME`, `/msg NAME TEXT`, `/me TEXT`, `/who`, `/help`, `/search WORDS`), a line
// starting with `//` sends a message that starts with `/`, and anything else is a message.

export const COMMANDS = [
  ['/help', 'show the commands'],
  ['/who', 'list who is here'],
  ['/nick NAME', 'change your name'],
  ['/msg NAME TEXT', 'a private message'],
  ['/me TEXT', 'an action: * yourname TEXT'],
  ['/search WORDS', 'the messages holding every word, with their time'],
  ['/quit', 'leave the chat'],
];
export const ESCAPE_HINT = 'A line starting with // sends a message that starts with /.';

/** The number of characters the server counts (code points, as Python's len). */
export function length(text) {
  let n = 0;
  for (const _ of text) n += 1;
  return n;
}

/**
 * What an entered line asks for: {kind: 'say', text, me}, {kind: 'dm', to, text},
 * {kind: 'nick', name}, {kind: 'who'}, {kind: 'help'}, {kind: 'search', text},
 * {kind: 'quit'}, {kind: 'problem', sentence}; null for a blank line.
 */
export function parseTyped(typed) {
  const text = typed.replace(/\r\n?/g, '\n').trimEnd();
  if (!text.trim()) return null;
  if (!text.startsWith('/') || text.startsWith('//')) {
    return { kind: 'say', text: text.startsWith('//') ? text.slice(1) : text, me: false };
  }
  const space = text.search(/\s/);
  const command = (space < 0 ? text : text.slice(0, space)).toLowerCase();
  const rest = space < 0 ? '' : text.slice(space + 1).trim();
  switch (command) {
    case '/help':
      return { kind: 'help' };
    case '/who':
      return { kind: 'who' };
    case '/quit':
      return { kind: 'quit' };
    case '/nick':
      return rest // the server says whether the name is one (`bad_name`), as for the terminal
        ? { kind: 'nick', name: rest }
        : { kind: 'problem', sentence: 'usage: /nick NAME' };
    case '/me':
      return rest ? { kind: 'say', text: rest, me: true } : { kind: 'problem', sentence: 'usage: /me TEXT' };
    case '/search':
      return rest ? { kind: 'search', text: rest } : { kind: 'problem', sentence: 'usage: /search WORDS' };
    case '/msg': {
      const match = /^(\S+)\s+([\s\S]*\S[\s\S]*)$/.exec(rest);
      return match
        ? { kind: 'dm', to: match[1], text: match[2] }
        : { kind: 'problem', sentence: 'usage: /msg NAME TEXT' };
    }
    default:
      return { kind: 'problem', sentence: `unknown command ${command}; /help lists them.` };
  }
}

/** A name as the server compares names (NFKC and case folding, near enough for a page). */
export function fold(name) {
  return name.normalize('NFKC').toLowerCase();
}

/**
 * Tab completion: the member names that start with the word before the caret.
 * Returns {start, end, names} (the word's bounds in `text`), or null when there is no word.
 */
export function completions(text, caret, names) {
  const before = text.slice(0, caret);
  const match = /[\p{L}\p{N}_.-]+$/u.exec(before);
  if (!match) return null;
  const start = caret - match[0].length;
  const prefix = fold(match[0]);
  const found = names.filter((name) => fold(name).startsWith(prefix));
  return found.length ? { start, end: caret, names: found } : null;
}

/** Whether `text` names `name` as a whole word (a mention). */
export function mentions(text, name) {
  if (!name) return false;
  const folded = fold(text);
  const wanted = fold(name);
  let at = folded.indexOf(wanted);
  const word = /[\p{L}\p{N}_-]/u;
  while (at >= 0) {
    const before = folded[at - 1];
    const after = folded[at + wanted.length];
    if ((!before || !word.test(before)) && (!after || !word.test(after))) return true;
    at = folded.indexOf(wanted, at + 1);
  }
  return false;
}
