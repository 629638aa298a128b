/* The operator's page: the server's live state and the console's commands (say, kick, ban, unban),
 * over the WebSocket at /admin/ws (the operator's protocol: auth, state, preview, run, result, error).
 *
 * Every piece of text that comes from the server (names, addresses, reasons, previews, results, the
 * server's own name) is put in the page with textContent or as an attribute value, never parsed as
 * HTML: names and refusal reasons are chosen by strangers.  The page runs under a CSP that allows
 * nothing inline and nothing from another origin, so there is no inline code here and no eval.
 *
 * The token comes in the link's fragment (#TOKEN), which browsers never send to a server.  It is
 * taken out of the address bar at once and kept in sessionStorage, so that a reload of this tab
 * still works but the token does not outlive the tab or show in a screenshot, bookmark or history.
 *
 * Stable hooks for browser tests:
 *   #admin-status       "connected" / "reconnecting…" / the server's error (then no more retries)
 *   #admin-server       the server's name
 *   #admin-count        members online; #admin-connections open connections; #admin-seq messages so far
 *   #admin-members      tbody; one tr[data-name] per member, with buttons .kick and .ban
 *   #admin-bans         tbody; one tr[data-address] per ban, with button .unban
 *   #admin-refusals     tbody; one tr per refusal, newest first
 *   #say-text, #say-send   the announcement's text and its button
 *   #confirm            the <dialog>; #confirm-text (the server's preview), #confirm-ok, #confirm-cancel,
 *                       #confirm-command (the command Confirm will run)
 *   #kick-reason        inside #confirm, shown for a kick
 *   #ban-minutes        inside #confirm, shown for a ban
 *   #admin-result       the last command's result (aria-live polite)
 */
"use strict";

(() => {
  const TOKEN_KEY = "tcpchat-admin-token";
  const FIRST_DELAY_MS = 1000;
  const MAX_DELAY_MS = 30000;
  const PREVIEW_DEBOUNCE_MS = 250;
  const PREVIEW_PATIENCE_MS = 5000;
  const SVG = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);
  const el = {
    server: $("admin-server"),
    status: $("admin-status"),
    statusBox: document.querySelector(".status"),
    count: $("admin-count"),
    connections: $("admin-connections"),
    seq: $("admin-seq"),
    members: $("admin-members"),
    membersEmpty: $("members-empty"),
    membersHeading: $("members-heading"),
    bans: $("admin-bans"),
    bansEmpty: $("bans-empty"),
    bansHeading: $("bans-heading"),
    refusals: $("admin-refusals"),
    refusalsEmpty: $("refusals-empty"),
    sayForm: $("say-form"),
    sayText: $("say-text"),
    saySend: $("say-send"),
    result: $("admin-result"),
    dialog: $("confirm"),
    dialogForm: $("confirm-form"),
    dialogTitle: $("confirm-title"),
    dialogText: $("confirm-text"),
    dialogCommand: $("confirm-command"),
    ok: $("confirm-ok"),
    cancel: $("confirm-cancel"),
    kickField: $("kick-field"),
    kickReason: $("kick-reason"),
    banField: $("ban-field"),
    banMinutes: $("ban-minutes"),
    banProblem: $("ban-problem"),
  };

  // ---- the token -------------------------------------------------------------------------

  function readStored() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || "";
    } catch {
      return "";
    }
  }

  function store(token) {
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      // Storage refused (private mode, policy): the token then lives only in this page's memory.
    }
  }

  /** The token from the link's fragment (then removed from the address bar), else from this tab's storage. */
  function takeToken() {
    let fromLink = location.hash.slice(1);
    try {
      fromLink = decodeURIComponent(fromLink);
    } catch {
      // Not percent-encoded after all: use it as it is.
    }
    if (fromLink) {
      store(fromLink);
      history.replaceState(null, "", location.pathname + location.search);
      return fromLink;
    }
    return readStored();
  }

  // ---- the connection --------------------------------------------------------------------

  const token = takeToken();
  let socket = null;
  let authed = false;
  let stopped = false;
  let delay = FIRST_DELAY_MS;
  let nextRequest = 1;
  const pendingRuns = new Map(); // run id -> command, until its result comes

  function setStatus(state, text) {
    el.statusBox.dataset.state = state;
    el.status.textContent = text;
    const online = state === "connected";
    document.body.classList.toggle("offline", !online);
    for (const button of document.querySelectorAll("button.act")) button.disabled = !online;
    el.saySend.disabled = !online;
  }

  function wsUrl() {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/admin/ws";
  }

  function connect() {
    if (stopped) return;
    let ws;
    try {
      ws = new WebSocket(wsUrl());
    } catch {
      retryLater();
      return;
    }
    socket = ws;
    ws.addEventListener("open", () => send({ type: "auth", token }));
    ws.addEventListener("message", (event) => {
      if (socket !== ws || typeof event.data !== "string") return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message && typeof message === "object") handle(message);
    });
    ws.addEventListener("close", () => {
      if (socket !== ws) return;
      socket = null;
      authed = false;
      dropped();
      retryLater();
    });
  }

  function send(message) {
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(message));
    return true;
  }

  function retryLater() {
    if (stopped) return;
    setStatus("reconnecting", "reconnecting…");
    const wait = delay;
    delay = Math.min(delay * 2, MAX_DELAY_MS);
    setTimeout(connect, wait);
  }

  /** The server refused this page (a wrong or old token): say why, and stop knocking. */
  function refused(text) {
    stopped = true;
    store("");
    setStatus("failed", text);
    const ws = socket;
    socket = null;
    if (ws) ws.close();
  }

  /** What the page does when the connection ends: the last state stays, marked stale; a dialog closes. */
  function dropped() {
    if (el.dialog.open) {
      closeDialog();
      if (!pendingRuns.size) say("The connection ended, so nothing was done; try again once it is back.");
    }
    if (pendingRuns.size) {
      say(
        "The connection ended before the server answered; the tables will show what was done once it is back.",
      );
      pendingRuns.clear();
    }
  }

  function handle(message) {
    switch (message.type) {
      case "state":
        if (!authed) {
          authed = true;
          delay = FIRST_DELAY_MS;
          setStatus("connected", "connected");
        }
        render(message);
        break;
      case "error":
        if (!authed) refused(text(message.message) || "The server refused this page.");
        else if (el.dialog.open && latestPreview && shownFor === null) previewRefused(text(message.message));
        else say(text(message.message));
        break;
      case "preview":
        previewArrived(message);
        break;
      case "result":
        if (pendingRuns.delete(message.id) || message.id === undefined) say(text(message.text));
        break;
      default:
        break;
    }
  }

  function text(value) {
    return value === undefined || value === null ? "" : String(value);
  }

  function say(sentence) {
    // Emptied first so that the same sentence twice is announced twice.
    el.result.textContent = "";
    requestAnimationFrame(() => {
      el.result.textContent = sentence;
    });
  }

  // ---- rendering the state ---------------------------------------------------------------

  let lastState = null;
  let stateTime = 0;

  function render(state) {
    lastState = state;
    stateTime = performance.now();
    document.body.classList.remove("no-state");
    const name = text(state.server) || "tcpchat";
    el.server.textContent = name;
    document.title = name + " · tcpchat operator";
    el.count.textContent = number(state.count);
    el.connections.textContent = number(state.connections);
    el.seq.textContent = number(state.seq);
    renderMembers(Array.isArray(state.members) ? state.members : []);
    renderBans(Array.isArray(state.bans) ? state.bans : []);
    renderRefusals(Array.isArray(state.refusals) ? state.refusals : []);
    tick();
  }

  function number(value) {
    return typeof value === "number" && Number.isFinite(value) ? value.toLocaleString() : "–";
  }

  /** A length of time as a person reads it: "12 s", "4 min 5 s", "2 h 5 min", "3 d 4 h". */
  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return s + " s";
    const m = Math.floor(s / 60);
    if (m < 10) return m + " min " + (s % 60) + " s";
    if (m < 60) return m + " min";
    const h = Math.floor(m / 60);
    if (h < 24) return h + " h " + (m % 60) + " min";
    return Math.floor(h / 24) + " d " + (h % 24) + " h";
  }

  function cell(row, className, label) {
    const td = document.createElement("td");
    td.className = className;
    td.dataset.label = label;
    row.append(td);
    return td;
  }

  function button(className, label, accessibleName, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "act " + className;
    b.textContent = label;
    b.setAttribute("aria-label", accessibleName);
    b.disabled = !authed;
    b.addEventListener("click", onClick);
    return b;
  }

  function lockMark() {
    const wrap = document.createElement("span");
    wrap.className = "lock";
    wrap.title = "encrypted (TLS)";
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 16 16");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const body = document.createElementNS(SVG, "rect");
    for (const [k, v] of [["x", "3"], ["y", "7"], ["width", "10"], ["height", "8"], ["rx", "1.5"]]) {
      body.setAttribute(k, v);
    }
    const shackle = document.createElementNS(SVG, "path");
    shackle.setAttribute("d", "M5 7V5a3 3 0 0 1 6 0v2");
    svg.append(body, shackle);
    const words = document.createElement("span");
    words.className = "visually-hidden";
    words.textContent = " with TLS";
    wrap.append(svg, words);
    return wrap;
  }

  const VIA = {
    tcp: ["tcp", "the terminal client or a script (JSON lines over TCP)"],
    plain: ["plain", "a plain text connection (nc, telnet)"],
    web: ["web", "the web page (WebSocket)"],
  };

  function viaCell(td, member) {
    td.textContent = "";
    const known = VIA[member.via];
    const tag = document.createElement("span");
    tag.className = "via via-" + (known ? member.via : "other");
    tag.textContent = known ? known[0] : text(member.via) || "?";
    if (known) tag.title = known[1];
    td.append(tag);
    if (member.tls) td.append(lockMark());
  }

  /**
   * Bring a tbody's rows in line with `items` without rebuilding the rows that stay, so that the
   * button a keyboard user is on keeps its focus while the state updates a few times a second.
   */
  function reconcile(tbody, items, key, attribute, build, update, heading) {
    const existing = new Map();
    for (const row of tbody.children) existing.set(row.getAttribute(attribute), row);
    const wanted = [];
    const seen = new Set();
    for (const item of items) {
      const k = key(item);
      if (seen.has(k)) continue;
      seen.add(k);
      let row = existing.get(k);
      if (!row) {
        row = build(item);
        row.setAttribute(attribute, k);
      }
      update(row, item);
      wanted.push(row);
    }
    let lostFocus = false;
    for (const [k, row] of existing) {
      if (seen.has(k)) continue;
      if (row.contains(document.activeElement)) lostFocus = true;
      row.remove();
    }
    wanted.forEach((row, i) => {
      if (tbody.children[i] !== row) tbody.insertBefore(row, tbody.children[i] || null);
    });
    if (lostFocus && !el.dialog.open) heading.focus();
  }

  function renderMembers(members) {
    reconcile(
      el.members,
      members,
      (m) => text(m.name),
      "data-name",
      (m) => {
        const row = document.createElement("tr");
        const name = text(m.name);
        cell(row, "name", "Name");
        cell(row, "address", "Address");
        cell(row, "how", "Connected by");
        cell(row, "idle", "Idle");
        const actions = cell(row, "actions", "Actions");
        actions.append(
          button("kick", "Kick", "Kick " + name, (e) => openAction("kick", name, e.currentTarget)),
          button("ban", "Ban", "Ban " + name, (e) => openAction("ban", name, e.currentTarget)),
        );
        return row;
      },
      (row, m) => {
        row.querySelector(".name").textContent = text(m.name);
        row.querySelector(".address").textContent = text(m.address);
        viaCell(row.querySelector(".how"), m);
        row.dataset.idle = String(Number(m.idle_seconds) || 0);
      },
      el.membersHeading,
    );
    el.membersEmpty.hidden = members.length > 0;
    el.members.parentElement.hidden = members.length === 0;
  }

  function renderBans(bans) {
    reconcile(
      el.bans,
      bans,
      (b) => text(b.address),
      "data-address",
      (b) => {
        const row = document.createElement("tr");
        const address = text(b.address);
        cell(row, "address", "Address");
        cell(row, "left", "Time left");
        cell(row, "actions", "Actions").append(
          button("unban", "Unban", "Unban " + address, (e) =>
            openAction("unban", address, e.currentTarget),
          ),
        );
        return row;
      },
      (row, b) => {
        row.querySelector(".address").textContent = text(b.address);
        const left = b.seconds_left;
        row.dataset.left = typeof left === "number" ? String(left) : "";
      },
      el.bansHeading,
    );
    el.bansEmpty.hidden = bans.length > 0;
    el.bans.parentElement.hidden = bans.length === 0;
  }

  function when(ts) {
    const time = document.createElement("time");
    const raw = text(ts);
    const date = new Date(raw);
    time.dateTime = raw;
    if (Number.isNaN(date.getTime())) {
      time.textContent = raw;
      return time;
    }
    const clock = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    const today = date.toDateString() === new Date().toDateString();
    time.textContent = today ? clock : date.toLocaleDateString() + " " + clock;
    time.title = date.toLocaleString();
    return time;
  }

  function renderRefusals(refusals) {
    // Nothing in these rows takes focus, so they are simply rebuilt.
    const rows = refusals.map((r) => {
      const row = document.createElement("tr");
      cell(row, "when", "Time").append(when(r.ts));
      cell(row, "address", "Address").textContent = text(r.address);
      cell(row, "reason", "Reason").textContent = text(r.reason);
      return row;
    });
    el.refusals.replaceChildren(...rows);
    el.refusalsEmpty.hidden = refusals.length > 0;
    el.refusals.parentElement.hidden = refusals.length === 0;
  }

  /** Idle times and bans' time left count on between states, which come only when something changed. */
  function tick() {
    if (!lastState || !authed) return;
    const elapsed = (performance.now() - stateTime) / 1000;
    for (const row of el.members.children) {
      row.querySelector(".idle").textContent = duration(Number(row.dataset.idle) + elapsed);
    }
    for (const row of el.bans.children) {
      const left = row.dataset.left;
      row.querySelector(".left").textContent =
        left === "" ? "until restart" : duration(Math.max(0, Number(left) - elapsed));
    }
  }

  // ---- actions: preview, confirm, run ----------------------------------------------------

  let action = null; // {kind, target}
  let invoker = null; // where focus goes back to when the dialog closes
  let home = null; // the heading of the invoker's section, if the invoker is gone by then
  let shownFor = null; // the command whose preview the dialog shows
  let latestPreview = null; // {id, command}
  let previewTimer = 0;
  let patienceTimer = 0;

  const TITLES = {
    kick: (t) => "Kick " + t,
    ban: (t) => "Ban " + t,
    unban: (t) => "Unban " + t,
    say: () => "Announce to everyone",
  };

  function banMinutes() {
    const raw = el.banMinutes.value.trim();
    if (raw === "") return { minutes: "" };
    if (!/^[0-9]+$/.test(raw) || Number(raw) < 1) {
      return { problem: "Minutes must be a whole number above 0, or empty for until the server restarts." };
    }
    return { minutes: String(Number(raw)) };
  }

  function oneLine(value) {
    return value.replace(/[\u0000-\u001f\u007f]+/g, " ").trim();
  }

  /** The console command the dialog's current inputs stand for, or null while they are not valid. */
  function currentCommand() {
    if (!action) return null;
    const t = action.target;
    switch (action.kind) {
      case "kick": {
        const reason = oneLine(el.kickReason.value);
        return "/kick " + t + (reason ? " " + reason : "");
      }
      case "ban": {
        const { minutes, problem } = banMinutes();
        el.banProblem.textContent = problem || "";
        el.banMinutes.setAttribute("aria-invalid", problem ? "true" : "false");
        if (problem) return null;
        return "/ban " + t + (minutes ? " " + minutes : "");
      }
      case "unban":
        return "/unban " + t;
      case "say":
        return "/say " + t;
      default:
        return null;
    }
  }

  function openAction(kind, target, from) {
    if (!authed) return;
    action = { kind, target };
    invoker = from;
    home = from.closest("section")?.querySelector("h2") || el.membersHeading;
    el.dialogTitle.textContent = TITLES[kind](target);
    el.kickField.hidden = kind !== "kick";
    el.banField.hidden = kind !== "ban";
    el.kickReason.value = "";
    el.banMinutes.value = "";
    el.banProblem.textContent = "";
    el.banMinutes.setAttribute("aria-invalid", "false");
    el.ok.textContent = { kick: "Kick", ban: "Ban", unban: "Unban", say: "Send" }[kind];
    el.ok.classList.toggle("danger", kind === "kick" || kind === "ban");
    el.dialog.showModal();
    if (kind === "kick") el.kickReason.focus();
    else if (kind === "ban") el.banMinutes.focus();
    else el.cancel.focus();
    askPreview();
  }

  function waitForPreview(command) {
    shownFor = null;
    el.ok.disabled = true;
    el.dialogCommand.textContent = command || "";
    el.dialogText.textContent = command ? "Asking the server what this will do…" : "";
  }

  function askPreview() {
    clearTimeout(previewTimer);
    clearTimeout(patienceTimer);
    const command = currentCommand();
    waitForPreview(command);
    if (!command) return;
    const id = "p" + nextRequest++;
    latestPreview = { id, command };
    if (!send({ type: "preview", command, id })) return;
    patienceTimer = setTimeout(() => {
      if (latestPreview && latestPreview.id === id && shownFor === null) {
        el.dialogText.textContent = "The server has not answered yet; Confirm stays off until it does.";
      }
    }, PREVIEW_PATIENCE_MS);
  }

  function previewArrived(message) {
    if (!el.dialog.open || !latestPreview || message.id !== latestPreview.id) return;
    if (latestPreview.command !== currentCommand()) return;
    clearTimeout(patienceTimer);
    shownFor = latestPreview.command;
    el.dialogText.textContent = text(message.text);
    el.ok.disabled = false;
  }

  /** The server would not preview the command (it could not read it): say why, and keep Confirm off. */
  function previewRefused(sentence) {
    clearTimeout(patienceTimer);
    el.dialogText.textContent = sentence;
  }

  function inputChanged() {
    if (!action) return;
    waitForPreview(currentCommand());
    clearTimeout(previewTimer);
    previewTimer = setTimeout(askPreview, PREVIEW_DEBOUNCE_MS);
  }

  function confirmAction() {
    const command = currentCommand();
    // Only ever run the very command whose preview the operator is looking at.
    if (!command || command !== shownFor || el.ok.disabled) return;
    const id = "r" + nextRequest++;
    if (!send({ type: "run", command, id })) return;
    pendingRuns.set(id, command);
    if (action.kind === "say") el.sayText.value = "";
    say(command + ": waiting for the server…");
    closeDialog();
  }

  /** Close the dialog and forget its action at once, so that nothing of it reaches the next one. */
  function closeDialog() {
    if (el.dialog.open) el.dialog.close();
    clearTimeout(previewTimer);
    clearTimeout(patienceTimer);
    action = null;
    shownFor = null;
    latestPreview = null;
    // The row that held the button may be gone (the member was kicked): then its table's heading.
    const back = invoker && invoker.isConnected && !invoker.disabled ? invoker : null;
    invoker = null;
    if (back) back.focus();
    else if (home && document.activeElement === document.body) home.focus();
    home = null;
  }

  function focusable() {
    return [...el.dialog.querySelectorAll("input, button, [tabindex]")].filter(
      (node) => !node.disabled && !node.closest("[hidden]") && node.tabIndex >= 0,
    );
  }

  /** Tab and Shift+Tab go round the dialog's controls and never out to the page or the browser. */
  function trapFocus(event) {
    if (event.key === "Escape") {
      event.preventDefault();
      closeDialog();
      return;
    }
    if (event.key !== "Tab") return;
    const nodes = focusable();
    if (!nodes.length) return;
    const first = nodes[0];
    const last = nodes[nodes.length - 1];
    const inside = el.dialog.contains(document.activeElement);
    if (event.shiftKey && (document.activeElement === first || !inside)) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && (document.activeElement === last || !inside)) {
      event.preventDefault();
      first.focus();
    }
  }

  // ---- wiring ----------------------------------------------------------------------------

  el.sayForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const words = oneLine(el.sayText.value);
    if (!words) {
      say("Write the announcement first.");
      el.sayText.focus();
      return;
    }
    openAction("say", words, el.sayText);
  });
  el.dialogForm.addEventListener("submit", (event) => {
    event.preventDefault();
    confirmAction();
  });
  el.cancel.addEventListener("click", closeDialog);
  el.dialog.addEventListener("keydown", trapFocus);
  // A close this page did not ask for (the browser's own Escape handling): tidy up the same way.
  // The event comes a moment after the close, when the dialog may already be open for the next action.
  el.dialog.addEventListener("close", () => {
    if (!el.dialog.open && action) closeDialog();
  });
  el.kickReason.addEventListener("input", inputChanged);
  el.banMinutes.addEventListener("input", inputChanged);
  setInterval(tick, 1000);
  // A new link pasted into this tab changes only the fragment, which loads nothing: start afresh with it.
  window.addEventListener("hashchange", () => {
    if (location.hash.length > 1 && takeToken()) location.reload();
  });

  if (!token) {
    stopped = true;
    setStatus(
      "failed",
      "This page needs the operator's link that the server printed when it started (it ends in #, then the token).",
    );
  } else {
    setStatus("connecting", "connecting…");
    connect();
  }
})();
