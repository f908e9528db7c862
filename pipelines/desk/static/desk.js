// Keyboard for the review desk: j/k move through the queue, a/r/c press the decision buttons.
document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const tag = (event.target.tagName || "").toLowerCase();
  if (tag === "input" || tag === "select" || tag === "textarea") return;
  if (event.key === "j" || event.key === "k") {
    const items = [...document.querySelectorAll("#items .item a")];
    if (!items.length) return;
    const at = items.findIndex((a) => a.parentElement.classList.contains("current"));
    const next = event.key === "j" ? Math.min(at + 1, items.length - 1) : Math.max(at - 1, 0);
    items[next].click();
    event.preventDefault();
  } else {
    const button = document.querySelector(`button[data-key="${event.key}"]`);
    if (button) { button.click(); event.preventDefault(); }
  }
});
