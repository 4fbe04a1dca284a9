// expert-jobs dashboard: live updates over server-sent events, refreshed through htmx.
// The server holds every rule; this file only decides when to fetch a fresh fragment.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // Every htmx request carries the session's CSRF token (the forms also post it as a field).
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = csrfToken();
  });

  function debounce(fn, ms) {
    var timer = null;
    return function () {
      if (timer) clearTimeout(timer);
      timer = setTimeout(function () { timer = null; fn(); }, ms);
    };
  }

  function refreshRows(rows) {
    var table = rows.querySelector("table[data-query]");
    var query = table ? table.getAttribute("data-query") : "";
    htmx.ajax("GET", rows.getAttribute("data-rows") + (query ? "?" + query : ""), { target: rows, swap: "innerHTML" });
  }

  // The jobs page: any change to the newest jobs refreshes the table with the current filters.
  function followList(rows) {
    var source = new EventSource(rows.getAttribute("data-events"));
    var refresh = debounce(function () { refreshRows(rows); }, 150);
    source.addEventListener("changed", refresh);
    var dot = document.getElementById("list-live");
    source.onopen = function () { if (dot) dot.classList.add("on"); };
    source.onerror = function () { if (dot) dot.classList.remove("on"); };
  }

  // A job's page: each new checkpoint or status change refreshes the page's live part; the
  // stream ends once the job rests (completed, paused for a person, failed...).
  var jobSource = null;
  function followJob(live) {
    var job = live.querySelector(".job");
    if (!job || job.getAttribute("data-live-on") !== "yes" || jobSource) return;
    var url = live.getAttribute("data-stream") + "?after=" + encodeURIComponent(job.getAttribute("data-last-seq") || "0") +
      "&version=" + encodeURIComponent(job.getAttribute("data-version") || "");
    jobSource = new EventSource(url);
    var refresh = debounce(function () {
      htmx.ajax("GET", live.getAttribute("data-live"), { target: live, swap: "innerHTML" });
    }, 120);
    jobSource.addEventListener("checkpoint", refresh);
    jobSource.addEventListener("changed", refresh);
    // The text of the generation in flight, as the model writes it (cleared by the next refresh).
    jobSource.addEventListener("delta", function (event) {
      var data = JSON.parse(event.data);
      var box = document.getElementById("stream-box");
      var text = document.getElementById("stream-text");
      var who = document.getElementById("stream-who");
      if (!box || !text) return;
      if (box.getAttribute("data-run") !== data.runId) {
        box.setAttribute("data-run", data.runId);
        text.textContent = "";
        if (who) who.textContent = data.expertKey;
      }
      box.hidden = false;
      text.textContent += data.text;
    });
    jobSource.addEventListener("end", function () {
      jobSource.close();
      jobSource = null;
      refresh();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var rows = document.getElementById("rows");
    if (rows && window.EventSource) followList(rows);
    var live = document.getElementById("live");
    if (live && window.EventSource) followJob(live);
  });

  // After a refresh of a job's page: follow it again if it moved on (queued after an answer...).
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.target && event.target.id === "live" && window.EventSource) followJob(event.target);
  });
})();
