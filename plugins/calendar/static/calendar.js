/* Calendar plugin: fills the form's UTC offsets from the browser's time zone data
   (Intl.DateTimeFormat), marks "today" by the browser's own date and asks before deleting.
   Plain script, no framework; loaded with `defer`. */
(function () {
  "use strict";

  var formatters = {};

  /* A formatter giving the wall-clock fields of an instant in `zone` (throws RangeError for a
     zone this browser does not know). */
  function formatter(zone) {
    if (!formatters[zone]) {
      formatters[zone] = new Intl.DateTimeFormat("en-US", {
        timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit"
      });
    }
    return formatters[zone];
  }

  /* The offset of `zone` from UTC at the instant `ms`, in minutes. */
  function offsetAt(zone, ms) {
    var parts = {};
    formatter(zone).formatToParts(new Date(ms)).forEach(function (p) { parts[p.type] = p.value; });
    var hour = Number(parts.hour) % 24;  /* some engines say 24 for midnight */
    var wall = Date.UTC(Number(parts.year), Number(parts.month) - 1, Number(parts.day),
                        hour, Number(parts.minute), Number(parts.second));
    return Math.round((wall - Math.floor(ms / 1000) * 1000) / 60000);
  }

  /* The offset in force at a local wall time ("2026-01-05T10:00"): a wall time is an instant
     only once its offset is known, so guess with the offset of the wall time read as UTC and
     correct once (that settles DST changes; a time in a spring-forward gap gets the later
     offset, as most calendars do). Returns null for a zone or time this browser cannot use. */
  function offsetForLocal(zone, local) {
    var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?/.exec(local || "");
    if (!m) { return null; }
    var asUtc = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
    var first = offsetAt(zone, asUtc);
    var second = offsetAt(zone, asUtc - first * 60000);
    if (first === second) { return first; }
    var third = offsetAt(zone, asUtc - second * 60000);
    return third === second ? second : Math.max(first, second);
  }

  function formatOffset(minutes) {
    var sign = minutes < 0 ? "-" : "+";
    var abs = Math.abs(minutes);
    var hh = String(Math.floor(abs / 60)), mm = String(abs % 60);
    return sign + (hh.length < 2 ? "0" + hh : hh) + ":" + (mm.length < 2 ? "0" + mm : mm);
  }

  function setupForm(form) {
    var zoneSelect = form.querySelector("select[name=tzid]");
    var warning = form.querySelector("[data-offset-warning]");
    var inputs = form.querySelectorAll("input[data-offset-target]");
    var unknown = form.getAttribute("data-msg-unknown") || "?";
    var unsupported = form.getAttribute("data-msg-unsupported") || "";
    if (!zoneSelect) { return; }

    /* A new appointment starts in the browser's own zone when the list has it. */
    if (zoneSelect.hasAttribute("data-default-zone")) {
      try {
        var own = Intl.DateTimeFormat().resolvedOptions().timeZone;
        for (var i = 0; i < zoneSelect.options.length; i++) {
          if (zoneSelect.options[i].value === own) { zoneSelect.value = own; break; }
        }
      } catch (e) { /* keep UTC */ }
    }

    function update() {
      var zone = zoneSelect.value;
      var failed = false;
      Array.prototype.forEach.call(inputs, function (input) {
        var hidden = document.getElementById(input.getAttribute("data-offset-target"));
        var out = document.getElementById(hidden.id + "-out");
        var offset = null;
        if (input.value) {
          try {
            offset = offsetForLocal(zone, input.value);
          } catch (e) {
            failed = true;  /* RangeError: unknown zone */
          }
        }
        hidden.value = offset === null ? "" : formatOffset(offset);
        if (out) { out.textContent = offset === null ? unknown : formatOffset(offset); }
      });
      if (warning) {
        warning.hidden = !failed;
        warning.textContent = failed ? unsupported : "";
      }
    }

    /* A new start moves an empty or earlier end to one hour later. */
    var start = form.querySelector("input[name=start]");
    var end = form.querySelector("input[name=end]");
    if (start && end) {
      start.addEventListener("change", function () {
        var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(start.value);
        if (!m || (end.value && end.value > start.value)) { return; }
        var t = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4] + 1, +m[5]));
        end.value = t.toISOString().slice(0, 16);
        update();
      });
    }

    zoneSelect.addEventListener("change", update);
    Array.prototype.forEach.call(inputs, function (input) {
      input.addEventListener("input", update);
      input.addEventListener("change", update);
    });
    form.addEventListener("submit", update);
    update();
  }

  /* The server marks today by UTC; the browser knows the user's own date. */
  function markToday() {
    var now = new Date();
    var pad = function (n) { return n < 10 ? "0" + n : String(n); };
    var today = now.getFullYear() + "-" + pad(now.getMonth() + 1) + "-" + pad(now.getDate());
    var cells = document.querySelectorAll(".cal [data-date]");
    Array.prototype.forEach.call(cells, function (cell) {
      var isToday = cell.getAttribute("data-date") === today;
      cell.classList.toggle("cal-today", isToday);
      if (isToday) { cell.setAttribute("aria-current", "date"); }
      else { cell.removeAttribute("aria-current"); }
    });
  }

  function setupConfirm(form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("form[data-calendar-form]"), setupForm);
    Array.prototype.forEach.call(document.querySelectorAll("form[data-confirm]"), setupConfirm);
    markToday();
    var errors = document.getElementById("cal-errors");
    if (errors) { errors.focus(); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
