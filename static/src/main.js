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
