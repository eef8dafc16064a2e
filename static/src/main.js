// Progressive enhancement only: every page works without this script.

// Ask before irreversible actions (publishing a version); the server still enforces every rule.
document.addEventListener("submit", (event) => {
  const button = event.submitter;
  const question = button && button.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// Unsent comment drafts belong to the person who wrote them: forget them all at logout.
for (const form of document.querySelectorAll("form[action$='/logout']")) {
  form.addEventListener("submit", () => {
    for (const key of Object.keys(localStorage)) if (key.startsWith("accord-draft-")) localStorage.removeItem(key);
  });
}

// Warn before the login session ends (WCAG 2.2.1, timing adjustable): a dialog some minutes before the idle
// or the absolute limit, "Stay logged in" restarts the idle limit, and the dialog says when it has ended.
// Every request counts as activity (another tab, the co-editor's preview), so before warning the page asks
// the server how long is really left, without that question counting as activity.
const WARN_SECONDS = 5 * 60;
const ASK_AGAIN_MS = 30 * 1000;

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

function setUpSessionTimeout(dialog) {
  const text = document.getElementById("session-timeout-text");
  const form = dialog.querySelector("form");
  const [extend, close, login] = ["extend", "close", "login"].map((a) => dialog.querySelector(`[data-action=${a}]`));
  const words = new Intl.RelativeTimeFormat(document.documentElement.lang, { numeric: "auto" });
  const deadline = (seconds) => (seconds === "" || seconds === undefined ? null : Date.now() + Number(seconds) * 1000);
  let idleEnds = deadline(dialog.dataset.idleLeft);
  let absoluteEnds = deadline(dialog.dataset.absoluteLeft);
  let ended = false;
  let dismissed = null; // the message the person closed ("absolute", "ended"): not shown again
  let askedAt = 0;
  let asking = false;
  let answers = 0; // answers taken in, on the dialog as data-answers: tests wait on it, nothing else reads it
  let returnFocus = null;
  let shownState = null;

  function show(state) {
    if (dialog.open || dismissed === state) return;
    shownState = state;
    returnFocus = document.activeElement;
    dialog.showModal();
  }
  function hide() {
    if (!dialog.open) return;
    dialog.close();
    if (returnFocus && returnFocus.focus) returnFocus.focus();
  }
  // Whole minutes only: the text is a status message, and a screen reader should not hear it every second.
  const inWords = (ms) => words.format(Math.max(1, Math.ceil(ms / 60000)), "minute");
  function say(message, { canExtend }) {
    if (text.textContent !== message) text.textContent = message;
    extend.hidden = !canExtend;
    close.hidden = canExtend;
    login.hidden = !ended;
  }
  function learn(left) {
    idleEnds = deadline(left.idle);
    absoluteEnds = deadline(left.absolute);
  }
  async function ask() {
    asking = true;
    try {
      const response = await fetch(dialog.dataset.statusUrl, { headers: { Accept: "application/json" } });
      if (response.status === 401) ended = true;
      else if (response.ok) learn(await response.json());
    } catch {
      // Offline: go by the times known so far.
    } finally {
      askedAt = Date.now();
      asking = false;
      answers += 1;
      dialog.dataset.answers = String(answers);
    }
    render();
  }
  function render() {
    const now = Date.now();
    if (ended) {
      say(dialog.dataset.endedMessage, { canExtend: false });
      show("ended");
      return;
    }
    const ends = [idleEnds, absoluteEnds].filter((t) => t !== null);
    if (!ends.length) return;
    const first = Math.min(...ends);
    if (first - now > WARN_SECONDS * 1000) {
      dismissed = null;
      hide();
      return;
    }
    if (!asking && now - askedAt > ASK_AGAIN_MS) {
      ask(); // renders again with what the server says
      return;
    }
    if (first <= now) {
      if (!asking) ask();
      return;
    }
    const byAbsolute = absoluteEnds !== null && first === absoluteEnds;
    const template = byAbsolute ? dialog.dataset.absoluteMessage : dialog.dataset.idleMessage;
    say(fill(template, { when: inWords(first - now) }), { canExtend: !byAbsolute });
    show(byAbsolute ? "absolute" : "idle");
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    extend.disabled = true;
    try {
      const response = await fetch(form.action, { method: "POST", body: new FormData(form) });
      if (response.status === 401) ended = true;
      else if (response.ok) {
        learn(await response.json());
        askedAt = Date.now();
        hide();
      }
      // Anything else (a refused token, an overloaded server): the dialog stays, and the button works again.
    } catch {
      // Offline: the dialog stays, and the next try may reach the server.
    } finally {
      extend.disabled = false;
      render();
    }
  });
  close.addEventListener("click", () => {
    dismissed = shownState;
    hide();
  });
  // Escape closes a modal dialog: for the idle warning that means "stay", as on GOV.UK's time-out warning;
  // otherwise it closes the dialog, so that nothing on the page is out of reach (say, text to copy).
  dialog.addEventListener("cancel", (event) => {
    event.preventDefault();
    if (!extend.hidden) form.requestSubmit();
    else close.click();
  });
  // Back to this tab: what the server knows may have changed meanwhile.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") ask();
  });
  render();
  setInterval(render, 1000);
}

const sessionTimeout = document.getElementById("session-timeout");
if (sessionTimeout) setUpSessionTimeout(sessionTimeout);
