// Progressive enhancement only: every page works without this script.

// Ask before irreversible actions (publishing a version); the server still enforces every rule.
document.addEventListener("submit", (event) => {
  const button = event.submitter;
  const question = button && button.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
