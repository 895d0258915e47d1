// Show the "new field name" input only when "Create new field…" is picked.
document.addEventListener("change", function (event) {
  if (!event.target.classList.contains("target-select")) return;
  var input = event.target.parentElement.querySelector(".new-name");
  if (!input) return;
  input.hidden = event.target.value !== "__new__";
  if (!input.hidden) input.focus();
});
