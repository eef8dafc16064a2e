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
const WARN_SECONDS = 5 * 60;

function setUpSessionTimeout(dialog) {
  const text = document.getElementById("session-timeout-text");
  const form = dialog.querySelector("form");
  const [extend, close, login] = ["extend", "close", "login"].map((a) => dialog.querySelector(`[data-action=${a}]`));
  const words = new Intl.RelativeTimeFormat(document.documentElement.lang, { numeric: "auto" });
  const deadline = (seconds) => (seconds === "" || seconds === undefined ? null : Date.now() + Number(seconds) * 1000);
  let idleEnds = deadline(dialog.dataset.idleLeft);
  const absoluteEnds = deadline(dialog.dataset.absoluteLeft);
  let dismissedAbsolute = false;
  let returnFocus = null;

  function show() {
    if (dialog.open) return;
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
  function say(message, { canExtend, ended }) {
    if (text.textContent !== message) text.textContent = message;
    extend.hidden = !canExtend;
    close.hidden = canExtend || ended;
    login.hidden = !ended;
  }
  function tick() {
    const now = Date.now();
    const ends = [idleEnds, absoluteEnds].filter((t) => t !== null);
    if (!ends.length) return;
    const first = Math.min(...ends);
    if (first <= now) {
      say(dialog.dataset.endedMessage, { canExtend: false, ended: true });
      show();
      return;
    }
    if (first - now > WARN_SECONDS * 1000) {
      if (!login.hidden) return;
      hide();
      return;
    }
    const byAbsolute = absoluteEnds !== null && first === absoluteEnds;
    if (byAbsolute && dismissedAbsolute) return;
    const template = byAbsolute ? dialog.dataset.absoluteMessage : dialog.dataset.idleMessage;
    say(template.replace("{when}", inWords(first - now)), { canExtend: !byAbsolute, ended: false });
    show();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    extend.disabled = true;
    try {
      const response = await fetch(form.action, { method: "POST", body: new FormData(form) });
      if (response.ok) {
        const left = await response.json();
        idleEnds = deadline(left.idle);
        hide();
      } else {
        idleEnds = Date.now();
      }
    } catch {
      // Offline: the dialog stays, and the next try may reach the server.
    } finally {
      extend.disabled = false;
      tick();
    }
  });
  close.addEventListener("click", () => {
    dismissedAbsolute = true;
    hide();
  });
  // Escape closes a modal dialog: for the idle warning that means "stay", as on GOV.UK's time-out warning.
  dialog.addEventListener("cancel", (event) => {
    event.preventDefault();
    if (!extend.hidden) form.requestSubmit();
    else if (!close.hidden) close.click();
  });
  tick();
  setInterval(tick, 1000);
}

const sessionTimeout = document.getElementById("session-timeout");
if (sessionTimeout) setUpSessionTimeout(sessionTimeout);
