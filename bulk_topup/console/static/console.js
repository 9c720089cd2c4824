// The console's own script: dropping a sheet on the upload area. Everything else works without
// it (the plain file input, every form); live progress is htmx's server-sent events extension.
document.addEventListener("DOMContentLoaded", function () {
  var drop = document.getElementById("drop");
  var input = document.getElementById("sheet");
  var chosen = document.getElementById("chosen");
  if (!drop || !input) return;
  function show() {
    chosen.textContent = input.files.length ? input.files[0].name : "";
    drop.classList.toggle("has-file", input.files.length > 0);
  }
  ["dragenter", "dragover"].forEach(function (name) {
    drop.addEventListener(name, function (e) {
      e.preventDefault();
      drop.classList.add("over");
    });
  });
  ["dragleave", "drop"].forEach(function (name) {
    drop.addEventListener(name, function () { drop.classList.remove("over"); });
  });
  drop.addEventListener("drop", function (e) {
    e.preventDefault();
    if (e.dataTransfer && e.dataTransfer.files.length) {
      input.files = e.dataTransfer.files;
      show();
    }
  });
  input.addEventListener("change", show);
});
