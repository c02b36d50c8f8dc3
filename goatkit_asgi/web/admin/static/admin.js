// goatkit plugin admin: confirmation for destructive forms and the live log tail.
// Served from the package (no inline scripts: Content-Security-Policy script-src 'self').
"use strict";

(function () {
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var message = form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  });

  var tail = document.getElementById("log-tail");
  if (!tail) {
    return;
  }
  var status = document.getElementById("tail-status");
  var url = tail.getAttribute("data-url");
  var after = tail.getAttribute("data-after") || "0";
  var interval = 1500;
  var maxLines = 500;

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function clock(seconds) {
    var d = new Date(seconds * 1000);
    return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
  }

  function line(record) {
    var li = document.createElement("li");
    li.className = "log-" + record.level + " fresh";
    var time = document.createElement("time");
    time.textContent = clock(record.time);
    time.title = new Date(record.time * 1000).toISOString();
    var level = document.createElement("span");
    level.className = "level";
    level.textContent = record.level;
    var message = document.createElement("span");
    message.className = "message";
    message.textContent = record.message;
    li.appendChild(time);
    li.appendChild(level);
    li.appendChild(message);
    return li;
  }

  function setStatus(text, live) {
    if (status) {
      status.textContent = text;
      status.classList.toggle("live", live);
    }
  }

  function poll() {
    if (document.hidden) {
      window.setTimeout(poll, interval);
      return;
    }
    fetch(url + "?after=" + encodeURIComponent(after), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (body) {
        var atBottom = tail.scrollTop + tail.clientHeight >= tail.scrollHeight - 4;
        body.records.forEach(function (record) {
          tail.appendChild(line(record));
        });
        while (tail.children.length > maxLines) {
          tail.removeChild(tail.firstChild);
        }
        if (body.records.length && atBottom) {
          tail.scrollTop = tail.scrollHeight;
        }
        after = String(body.last);
        setStatus("live", true);
        window.setTimeout(poll, interval);
      })
      .catch(function (error) {
        setStatus("live tail paused (" + error.message + "); retrying", false);
        window.setTimeout(poll, interval * 4);
      });
  }

  tail.scrollTop = tail.scrollHeight;
  poll();
})();
