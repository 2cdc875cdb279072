/* Modtools Image: the manual upload page (templates/ingest/upload.html).
 *
 * Without this file the form posts all files at once and the page comes back with the results.
 * With it: images can be dropped on the form, and each file is sent in its own request with a
 * progress bar, so one refused or slow file does not hold up the others. The server answers each
 * request with its result row (ingest/_result.html), marked by data-upload-result.
 */
(function () {
  "use strict";

  // Two at a time: faster than one by one, without flooding a small server.
  var PARALLEL_UPLOADS = 2;

  function csrfToken(form) {
    try {
      var headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
      if (headers["X-CSRFToken"]) return headers["X-CSRFToken"];
    } catch (ignored) { /* fall back to the form's own field */ }
    var field = form.querySelector('input[name="csrf_token"]');
    return field ? field.value : "";
  }

  function pendingRow(file) {
    var row = document.createElement("li");
    row.className = "card cluster";
    var name = document.createElement("strong");
    name.textContent = file.name;
    var bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", "Uploading " + file.name);
    row.appendChild(name);
    row.appendChild(bar);
    return row;
  }

  function failRow(row, message) {
    var bar = row.querySelector("progress");
    if (bar) bar.remove();
    row.setAttribute("data-upload-result", "failed");
    var text = document.createElement("span");
    text.className = "error";
    text.textContent = message;
    row.appendChild(text);
  }

  function failureMessage(status) {
    if (status === 413) return "This file is larger than the server accepts.";
    if (status === 400) return "The form expired. Reload the page and upload this file again.";
    if (status === 0) return "The upload did not reach the server. Check your connection and try again.";
    return "The upload failed (HTTP " + status + "). Try again in a moment.";
  }

  function send(form, file, note, row, done) {
    var data = new FormData();
    data.append("csrf_token", csrfToken(form));
    data.append("images", file, file.name);
    data.append("note", note);
    var request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader("X-CSRFToken", csrfToken(form));
    request.setRequestHeader("HX-Request", "true"); // ask for the result rows, not the page
    var bar = row.querySelector("progress");
    request.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) bar.value = Math.round((event.loaded / event.total) * 100);
    });
    request.addEventListener("load", function () {
      if (request.responseText.indexOf("data-upload-result") === -1) {
        failRow(row, failureMessage(request.status));
      } else {
        var template = document.createElement("template");
        template.innerHTML = request.responseText;
        row.replaceWith(template.content);
      }
      done();
    });
    request.addEventListener("error", function () {
      failRow(row, failureMessage(0));
      done();
    });
    request.send(data);
  }

  function enhance(form) {
    var input = form.querySelector('input[type="file"]');
    var zone = form.querySelector("[data-dropzone]") || form;
    var results = document.getElementById("upload-results");
    var title = document.querySelector("[data-results-title]");
    var button = form.querySelector('button[type="submit"]');
    if (!input || !results) return;

    zone.addEventListener("dragover", function (event) {
      event.preventDefault(); // without this the browser opens the dropped file instead
      zone.setAttribute("data-dragover", "");
    });
    zone.addEventListener("dragleave", function () { zone.removeAttribute("data-dragover"); });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      zone.removeAttribute("data-dragover");
      if (event.dataTransfer && event.dataTransfer.files.length) input.files = event.dataTransfer.files;
    });

    form.addEventListener("submit", function (event) {
      var files = Array.prototype.slice.call(input.files || []);
      if (!files.length || typeof FormData === "undefined") return; // let the plain form post
      event.preventDefault();
      var note = (form.querySelector('[name="note"]') || { value: "" }).value;
      var batch = document.createDocumentFragment();
      var queue = files.map(function (file) {
        var row = pendingRow(file);
        batch.appendChild(row);
        return { file: file, row: row };
      }).reverse(); // pop() then takes the files in the order they were chosen
      results.prepend(batch); // newest batch first, its files in order
      if (title) title.hidden = false;
      input.value = "";
      button.disabled = true;
      var running = 0;
      function next() {
        if (!queue.length) {
          if (running === 0) button.disabled = false;
          return;
        }
        var job = queue.pop();
        running += 1;
        send(form, job.file, note, job.row, function () { running -= 1; next(); });
      }
      for (var i = 0; i < PARALLEL_UPLOADS; i += 1) next();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-upload-form]"), enhance);
  });
})();
