// The live co-editor of a code's working text: CodeMirror 6 bound to a Yjs document that syncs with the
// server's pycrdt replica over Socket.IO. Every change is acknowledged only once the server has stored it.
import * as Y from "yjs";
import { io } from "socket.io-client";
import { EditorState } from "@codemirror/state";
import { EditorView, keymap } from "@codemirror/view";
import { basicSetup } from "codemirror";
import { markdown } from "@codemirror/lang-markdown";
import { yCollab, yUndoManagerKeymap } from "y-codemirror.next";
import * as awarenessProtocol from "y-protocols/awareness";
import { fromBase64 } from "lib0/buffer";

const SEND_EVERY_MS = 50;
const AWARENESS_EVERY_MS = 100;
const PREVIEW_AFTER_MS = 600;
const ACK_TIMEOUT_MS = 15000;
// Cursor colours chosen for at least 4.5:1 contrast of their white labels.
const COLOURS = ["#0b5cad", "#8a1c7c", "#0f6b3a", "#9c3d00", "#5a3fb0", "#a3123a", "#006d77", "#6b5200"];

function headingAbove(state) {
  const line = state.doc.lineAt(state.selection.main.head).number;
  for (let n = line; n >= 1; n -= 1) {
    const match = /^#{1,6}\s+(.*?)\s*(\{#[a-z][a-z0-9-]*\})?\s*$/.exec(state.doc.line(n).text);
    if (match) return match[1];
  }
  return "";
}

const HEADING = /^#{1,6}\s+(.*?)\s*(\{#[a-z][a-z0-9-]*\})?\s*$/;
// Say that someone edited a clause at most this often for the same person and clause: a screen reader
// should hear that Anna is working on clause 2.1, not every word she types.
const ACTIVITY_EVERY_MS = 1000;
const ACTIVITY_REPEAT_MS = 30000;

function headingBefore(source, position) {
  let end = Math.min(position, source.length);
  for (;;) {
    const start = source.lastIndexOf("\n", end - 1) + 1;
    const stop = source.indexOf("\n", start);
    const match = HEADING.exec(source.slice(start, stop === -1 ? undefined : stop));
    if (match) return match[1];
    if (start === 0) return "";
    end = start - 1;
  }
}

function toBytes(data) {
  return data instanceof Uint8Array ? data : new Uint8Array(data);
}

export function startEditor(root) {
  const config = root.dataset;
  const code = Number(config.code);
  const canWrite = config.canWrite === "true";
  const userId = Number(config.userId);
  const status = document.getElementById("collab-status");
  const presenceList = document.getElementById("collab-presence");
  const preview = document.getElementById("collab-preview");
  const outline = document.getElementById("collab-outline");
  const activity = document.getElementById("collab-activity");
  const labels = JSON.parse(document.getElementById("collab-labels").textContent);

  const doc = new Y.Doc();
  const text = doc.getText("text");
  const awareness = new awarenessProtocol.Awareness(doc);
  const colour = COLOURS[userId % COLOURS.length];
  awareness.setLocalStateField("user", { name: config.userName, color: colour, colorLight: `${colour}33` });

  let joined = false;
  let online = navigator.onLine;
  let unacked = 0;
  let queued = [];

  function showStatus() {
    let key;
    if (!online) key = "offline";
    else if (!socket.connected || !joined) key = "reconnecting";
    else if (!canWrite) key = "readonly";
    else if (queued.length || unacked) key = "saving";
    else key = "saved";
    status.dataset.state = key;
    status.textContent = labels[key];
  }

  const socket = io("/collab", { transports: ["websocket"], reconnectionDelayMax: 5000 });

  function join() {
    socket.timeout(ACK_TIMEOUT_MS).emit("join", { code, state_vector: Y.encodeStateVector(doc) }, (err, answer) => {
      if (err || !answer.ok) {
        status.textContent = (answer && answer.error) || labels.reconnecting;
        return;
      }
      Y.applyUpdate(doc, toBytes(answer.update), "server");
      for (const update of answer.awareness) awarenessProtocol.applyAwarenessUpdate(awareness, toBytes(update), "server");
      joined = true;
      // Whatever was typed offline is exactly what the server's state vector lacks.
      if (canWrite) {
        const missing = Y.encodeStateAsUpdate(doc, toBytes(answer.state_vector));
        if (missing.length > 2) {
          queued = [missing];
        }
      }
      sendAwareness([doc.clientID]);
      flush();
      showStatus();
    });
  }

  function flush() {
    // One update in flight at a time: the server then applies this client's updates in the order typed.
    if (!queued.length || !joined || !socket.connected || unacked) return;
    const update = queued.length === 1 ? queued[0] : Y.mergeUpdates(queued);
    queued = [];
    unacked += 1;
    socket.timeout(ACK_TIMEOUT_MS).emit("update", { code, update }, (err, answer) => {
      unacked -= 1;
      if (err || !answer.ok) {
        // Not stored: keep it. A rejoin re-sends everything the server lacks, so nothing typed is lost.
        queued.unshift(update);
        if (answer && answer.status === 403) status.textContent = answer.error;
      }
      showStatus();
      flush();
    });
    showStatus();
  }

  doc.on("update", (update, origin) => {
    if (origin === "server" || !canWrite) return;
    queued.push(update);
    showStatus();
  });
  setInterval(flush, SEND_EVERY_MS);

  socket.on("connect", join);
  socket.on("disconnect", () => {
    joined = false;
    showStatus();
  });
  socket.io.on("reconnect_attempt", showStatus);
  // One text frame per tick: others' merged changes and presence, base64 (see app/collab/hub.py).
  socket.on("frame", (message) => {
    if (message.code !== code) return;
    if (message.update) Y.applyUpdate(doc, fromBase64(message.update), "server");
    if (message.awareness) awarenessProtocol.applyAwarenessUpdate(awareness, fromBase64(message.awareness), "server");
  });
  window.addEventListener("online", () => {
    online = true;
    showStatus();
  });
  window.addEventListener("offline", () => {
    online = false;
    showStatus();
  });

  let pendingClients = new Set();
  let awarenessTimer = null;
  function sendAwareness(clients) {
    for (const client of clients) pendingClients.add(client);
    if (awarenessTimer) return;
    awarenessTimer = setTimeout(() => {
      awarenessTimer = null;
      if (!joined) return;
      const update = awarenessProtocol.encodeAwarenessUpdate(awareness, [...pendingClients]);
      pendingClients = new Set();
      socket.emit("awareness", { code, update });
    }, AWARENESS_EVERY_MS);
  }
  awareness.on("update", ({ added, updated, removed }, origin) => {
    if (origin !== "server") sendAwareness(added.concat(updated, removed).filter((c) => c === doc.clientID));
    renderPresence();
  });
  window.addEventListener("beforeunload", () => awarenessProtocol.removeAwarenessStates(awareness, [doc.clientID], "unload"));

  function renderPresence() {
    presenceList.replaceChildren();
    for (const [client, state] of awareness.getStates()) {
      if (!state.user) continue;
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.backgroundColor = state.user.color;
      item.append(swatch, ` ${state.user.name}${client === doc.clientID ? ` (${labels.you})` : ""}`);
      if (state.clause) {
        const where = document.createElement("span");
        where.className = "where";
        where.textContent = ` — ${state.clause}`;
        item.append(where);
      }
      presenceList.append(item);
    }
  }

  let previewTimer = null;
  async function refreshPreview() {
    let response;
    try {
      response = await fetch(config.previewUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": config.csrf },
        body: JSON.stringify({ text: text.toString() }),
      });
    } catch {
      return; // Offline: the preview catches up with the next change once the connection is back.
    }
    if (!response.ok) return;
    const rendered = await response.json();
    // The server renders with raw HTML disabled and sanitises the result.
    preview.innerHTML = rendered.html;
    outline.replaceChildren(
      ...rendered.toc
        .filter((entry) => entry.level > 1)
        .map((entry) => {
          const item = document.createElement("li");
          item.className = `toc-level-${entry.level}`;
          const link = document.createElement("a");
          link.href = `#${entry.key}`;
          link.textContent = entry.title;
          item.append(link);
          return item;
        }),
    );
  }
  text.observe(() => {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(refreshPreview, PREVIEW_AFTER_MS);
  });

  // "Anna edited Measure 1.1": where others' edits land, named by who is in that clause (from presence).
  let editedAt = [];
  let activityTimer = null;
  const lastSaid = new Map();
  function announceEdits() {
    activityTimer = null;
    const source = text.toString();
    const clauses = new Set(editedAt.map((position) => headingBefore(source, position)));
    editedAt = [];
    const now = Date.now();
    for (const clause of clauses) {
      const names = new Set();
      for (const [client, state] of awareness.getStates()) {
        if (client !== doc.clientID && state.user && state.clause === clause) names.add(state.user.name);
      }
      const who = names.size ? [...names].join(", ") : labels.someone;
      const key = `${who}\n${clause}`;
      if (now - (lastSaid.get(key) || 0) < ACTIVITY_REPEAT_MS) continue;
      lastSaid.set(key, now);
      const template = clause ? labels.edited : labels.editedText;
      // One pass with a function: a name holding "$&" or "{clause}" is text, not a pattern.
      const values = { name: who, clause };
      activity.textContent = template.replace(/\{(name|clause)\}/g, (whole, key) => values[key]);
    }
  }
  text.observe((event, transaction) => {
    if (transaction.local || !joined || !activity) return;
    let index = 0;
    for (const op of event.delta) {
      if (op.retain) index += op.retain;
      else if (op.insert) {
        editedAt.push(index);
        index += op.insert.length;
      } else if (op.delete) editedAt.push(index);
    }
    if (!activityTimer) activityTimer = setTimeout(announceEdits, ACTIVITY_EVERY_MS);
  });

  const undoManager = new Y.UndoManager(text);
  const view = new EditorView({
    parent: root,
    state: EditorState.create({
      doc: text.toString(),
      extensions: [
        EditorView.cspNonce.of(config.cspNonce),
        keymap.of(yUndoManagerKeymap),
        basicSetup,
        markdown(),
        EditorView.lineWrapping,
        EditorState.readOnly.of(!canWrite),
        // An explicit tabindex: the scroller around the text must visibly hold a focusable element (WCAG 2.1.1),
        // and assistive tools do not all count contenteditable as focusable; it adds no extra tab stop.
        EditorView.contentAttributes.of({ "aria-label": labels.editor, "aria-multiline": "true", tabindex: "0" }),
        yCollab(text, awareness, { undoManager }),
        EditorView.updateListener.of((update) => {
          if (update.selectionSet || update.docChanged) {
            const clause = headingAbove(update.state);
            if (awareness.getLocalState()?.clause !== clause) awareness.setLocalStateField("clause", clause);
          }
        }),
      ],
    }),
  });
  root.classList.add("collab-ready");
  showStatus();
  window.accordEditor = { view, doc, text, socket, awareness };
  return view;
}

const root = document.getElementById("collab-editor");
if (root) {
  for (const fallback of document.querySelectorAll(".no-js-editor")) fallback.hidden = true;
  startEditor(root);
}
