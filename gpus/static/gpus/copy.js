// Copy buttons: <button data-copy="ID"> copies the value (or text) of the element with that id.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  const text = "value" in source ? source.value : source.textContent;
  navigator.clipboard.writeText(text.trim()).then(
    () => { button.textContent = "Copied"; },
    () => { source.select?.(); button.textContent = "Press Ctrl+C to copy"; },
  );
});
