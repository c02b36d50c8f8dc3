/*
 * process: the workflow designer (plain JavaScript, no framework).
 *
 * The page embeds the stored definition as JSON in
 * <script type="application/json" id="workflow-data"> and the translated
 * texts in #workflow-texts. States are SVG groups that are dragged with
 * pointer events; transitions are arrows (SVG markers) redrawn while a state
 * moves. "Save" posts {"name", "definition"} as JSON to the URL in the
 * designer's data-save-url and shows the answer (or the problems found).
 *
 * On the list page it only asks for confirmation before a delete.
 */
(function () {
  "use strict";

  var SVG_NS = "http://www.w3.org/2000/svg";
  var NODE_W = 150;
  var NODE_H = 52;
  var MAX_COORD = 4000;
  var ID_RE = /^[a-z0-9_-]{1,40}$/;
  var MIN_W = 900;
  var MIN_H = 520;

  /* "{name}" placeholders filled from params. */
  function format(text, params) {
    return String(text).replace(/\{(\w+)\}/g, function (match, key) {
      return Object.prototype.hasOwnProperty.call(params, key) ? String(params[key]) : match;
    });
  }

  function chars(text) {
    return Array.from(text).length;
  }

  function shorten(text, max) {
    var list = Array.from(text);
    return list.length > max ? list.slice(0, max - 1).join("") + "\u2026" : text;
  }

  function svgEl(name, attrs, text) {
    var node = document.createElementNS(SVG_NS, name);
    Object.keys(attrs || {}).forEach(function (key) {
      node.setAttribute(key, attrs[key]);
    });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clamp(value) {
    return Math.max(0, Math.min(MAX_COORD, Math.round(value)));
  }

  /* -- list page ------------------------------------------------------------------------ */

  function initConfirm() {
    document.querySelectorAll("form.js-confirm").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm") || "")) event.preventDefault();
      });
    });
  }

  /* -- designer ------------------------------------------------------------------------- */

  function Designer(root) {
    var data = JSON.parse(document.getElementById("workflow-data").textContent);
    var texts = JSON.parse(document.getElementById("workflow-texts").textContent);
    var saveUrl = root.getAttribute("data-save-url");
    var svg = root.querySelector("#process-canvas");
    var edgesLayer = svg.querySelector(".process-edges");
    var nodesLayer = svg.querySelector(".process-nodes");
    var rubber = svg.querySelector(".process-rubber");
    var mode = root.querySelector("#process-mode");
    var $ = function (id) {
      return root.querySelector("#" + id);
    };

    var model = {
      states: (data.states || []).map(function (s) {
        return { id: s.id, label: s.label, x: s.x, y: s.y, initial: !!s.initial };
      }),
      transitions: (data.transitions || []).map(function (t) {
        return { from: t.from, to: t.to, label: t.label || "" };
      }),
    };
    var selected = null; /* id of the selected state */
    var selectedEdge = -1; /* index of the selected transition */
    var connectFrom = null; /* id of the state a new transition starts from */
    var drag = null;
    var dirty = false;

    function stateById(id) {
      for (var i = 0; i < model.states.length; i++)
        if (model.states[i].id === id) return model.states[i];
      return null;
    }

    function hasTransition(from, to) {
      return model.transitions.some(function (t) {
        return t.from === from && t.to === to;
      });
    }

    function announce(text) {
      mode.textContent = text;
    }

    function markDirty() {
      dirty = true;
      root.classList.add("process-dirty");
    }

    /* -- drawing -- */

    function resizeCanvas() {
      var w = MIN_W;
      var h = MIN_H;
      model.states.forEach(function (s) {
        w = Math.max(w, s.x + NODE_W + 60);
        h = Math.max(h, s.y + NODE_H + 60);
      });
      svg.setAttribute("width", w);
      svg.setAttribute("height", h);
      svg.setAttribute("viewBox", "0 0 " + w + " " + h);
    }

    function nodeLabel(s) {
      var text = format(texts.node_label, { label: s.label, id: s.id });
      return s.initial ? text + ", " + texts.node_initial : text;
    }

    function renderNodes() {
      nodesLayer.textContent = "";
      model.states.forEach(function (s) {
        var classes = "process-node";
        if (s.initial) classes += " process-node-is-initial";
        if (s.id === selected) classes += " process-node-selected";
        if (s.id === connectFrom) classes += " process-node-connecting";
        var g = svgEl("g", {
          class: classes,
          "data-state": s.id,
          transform: "translate(" + s.x + "," + s.y + ")",
          tabindex: "0",
          role: "button",
          "aria-label": nodeLabel(s),
          "aria-pressed": s.id === selected ? "true" : "false",
        });
        g.appendChild(svgEl("title", {}, s.label + " (" + s.id + ")"));
        g.appendChild(
          svgEl("rect", { class: "process-node-box", width: NODE_W, height: NODE_H, rx: 10 }),
        );
        if (s.initial) {
          g.appendChild(
            svgEl("rect", {
              class: "process-node-initial",
              x: 4,
              y: 4,
              width: NODE_W - 8,
              height: NODE_H - 8,
              rx: 7,
            }),
          );
        }
        g.appendChild(
          svgEl(
            "text",
            { class: "process-node-label", x: NODE_W / 2, y: 23 },
            shorten(s.label, 18),
          ),
        );
        g.appendChild(
          svgEl(
            "text",
            { class: "process-node-id", x: NODE_W / 2, y: 40 },
            (s.initial ? "\u25B6 " : "") + shorten(s.id, 20),
          ),
        );
        g.appendChild(
          svgEl("circle", { class: "process-handle", cx: NODE_W, cy: NODE_H / 2, r: 8 }),
        );
        nodesLayer.appendChild(g);
      });
    }

    function center(s) {
      return { x: s.x + NODE_W / 2, y: s.y + NODE_H / 2 };
    }

    /* Where the ray from p towards q leaves the box of state s (p inside it). */
    function exitPoint(p, q, s) {
      var dx = q.x - p.x;
      var dy = q.y - p.y;
      var t = Infinity;
      if (dx > 0) t = Math.min(t, (s.x + NODE_W - p.x) / dx);
      if (dx < 0) t = Math.min(t, (s.x - p.x) / dx);
      if (dy > 0) t = Math.min(t, (s.y + NODE_H - p.y) / dy);
      if (dy < 0) t = Math.min(t, (s.y - p.y) / dy);
      if (!isFinite(t) || t > 1) t = 0;
      return { x: p.x + dx * t, y: p.y + dy * t };
    }

    function renderEdges() {
      edgesLayer.textContent = "";
      /* Labels go above every arrow, so a line crossing one never hides it. */
      var labels = svgEl("g", { class: "process-edge-labels" });
      model.transitions.forEach(function (t, index) {
        var a = stateById(t.from);
        var b = stateById(t.to);
        if (!a || !b) return;
        var ac = center(a);
        var bc = center(b);
        var dx = bc.x - ac.x;
        var dy = bc.y - ac.y;
        var len = Math.sqrt(dx * dx + dy * dy) || 1;
        /* A pair of opposite transitions is drawn as two parallel arrows. */
        var off = hasTransition(t.to, t.from) ? 12 : 0;
        var nx = (-dy / len) * off;
        var ny = (dx / len) * off;
        var p = { x: ac.x + nx, y: ac.y + ny };
        var q = { x: bc.x + nx, y: bc.y + ny };
        var start = exitPoint(p, q, a);
        var end = exitPoint(q, p, b);
        var d =
          "M" +
          start.x.toFixed(1) +
          "," +
          start.y.toFixed(1) +
          " L" +
          end.x.toFixed(1) +
          "," +
          end.y.toFixed(1);
        var isSelected = index === selectedEdge;
        var g = svgEl("g", {
          class: "process-edge" + (isSelected ? " process-edge-selected" : ""),
          "data-index": index,
          "data-from": t.from,
          "data-to": t.to,
        });
        g.appendChild(
          svgEl(
            "title",
            {},
            a.label + " \u2192 " + b.label + (t.label ? " (" + t.label + ")" : ""),
          ),
        );
        g.appendChild(svgEl("path", { class: "process-edge-hit", d: d }));
        g.appendChild(
          svgEl("path", {
            class: "process-edge-line",
            d: d,
            "marker-end": isSelected ? "url(#process-arrow-selected)" : "url(#process-arrow)",
          }),
        );
        if (t.label) {
          /* Beside the middle of the arrow, on its left as seen along it, so the labels of
           * a pair of opposite arrows (and of crossing ones) do not cover each other. */
          var ux = -dy / len;
          var uy = dx / len;
          var anchor = ux > 0.4 ? "start" : ux < -0.4 ? "end" : "middle";
          labels.appendChild(
            svgEl(
              "text",
              {
                class: "process-edge-label" + (isSelected ? " process-edge-label-selected" : ""),
                x: ((start.x + end.x) / 2 + ux * 8).toFixed(1),
                y: ((start.y + end.y) / 2 + uy * 10 + 4).toFixed(1),
                "text-anchor": anchor,
              },
              shorten(t.label, 24),
            ),
          );
        }
        edgesLayer.appendChild(g);
      });
      edgesLayer.appendChild(labels);
    }

    function fillSelect(select, keep, index) {
      select.textContent = "";
      model.states.forEach(function (s) {
        var option = document.createElement("option");
        option.value = s.id;
        option.textContent = s.label + " (" + s.id + ")";
        select.appendChild(option);
      });
      if (keep && stateById(keep)) select.value = keep;
      else if (select.options.length > index) select.selectedIndex = index;
    }

    function renderTransitionList() {
      var list = $("process-transitions");
      list.textContent = "";
      $("process-transitions-none").hidden = model.transitions.length > 0;
      model.transitions.forEach(function (t, index) {
        var a = stateById(t.from);
        var b = stateById(t.to);
        var li = document.createElement("li");
        if (index === selectedEdge) li.className = "process-transition-selected";
        var text = document.createElement("span");
        text.textContent = (a ? a.label : t.from) + " \u2192 " + (b ? b.label : t.to);
        li.appendChild(text);
        if (t.label) {
          var small = document.createElement("small");
          small.textContent = t.label;
          li.appendChild(small);
        }
        var button = document.createElement("button");
        button.type = "button";
        button.className = "process-button process-danger process-small";
        button.textContent = texts.delete;
        button.setAttribute(
          "aria-label",
          format(texts.delete_transition, { from: a ? a.label : t.from, to: b ? b.label : t.to }),
        );
        button.addEventListener("click", function () {
          model.transitions.splice(index, 1);
          selectedEdge = -1;
          markDirty();
          render();
        });
        li.appendChild(button);
        list.appendChild(li);
      });
    }

    function renderSelection() {
      var s = selected ? stateById(selected) : null;
      $("process-selected-none").hidden = !!s;
      $("process-selected-form").hidden = !s;
      if (!s) return;
      $("process-selected-id").textContent = s.id;
      var input = $("process-selected-label");
      if (document.activeElement !== input) input.value = s.label;
      $("process-selected-is-initial").hidden = !s.initial;
      $("process-make-initial").hidden = s.initial;
    }

    function render() {
      resizeCanvas();
      renderEdges();
      renderNodes();
      fillSelect($("process-transition-from"), $("process-transition-from").value, 0);
      fillSelect($("process-transition-to"), $("process-transition-to").value, 1);
      renderTransitionList();
      renderSelection();
    }

    /* -- editing -- */

    function select(id, focus) {
      selected = id;
      selectedEdge = -1;
      render();
      if (id && focus) {
        var node = nodesLayer.querySelector('[data-state="' + CSS.escape(id) + '"]');
        if (node) node.focus();
      }
    }

    function addTransition(from, to, label) {
      if (from === to) return texts.transition_self;
      if (hasTransition(from, to)) return texts.transition_exists;
      model.transitions.push({ from: from, to: to, label: label });
      markDirty();
      render();
      announce(
        format(texts.transition_added, { from: stateById(from).label, to: stateById(to).label }),
      );
      return "";
    }

    function startConnect(id) {
      connectFrom = id;
      renderNodes();
      announce(format(texts.connect_hint, { state: stateById(id).label }));
    }

    function endConnect(message) {
      connectFrom = null;
      rubber.setAttribute("visibility", "hidden");
      renderNodes();
      if (message) announce(message);
    }

    function freeSpot() {
      var stepX = NODE_W + 60;
      var stepY = NODE_H + 60;
      for (var row = 0; row < 40; row++) {
        for (var col = 0; col < 5; col++) {
          var x = 40 + col * stepX;
          var y = 40 + row * stepY;
          var taken = model.states.some(function (s) {
            return Math.abs(s.x - x) < NODE_W + 20 && Math.abs(s.y - y) < NODE_H + 20;
          });
          if (!taken) return { x: x, y: y };
        }
      }
      return { x: 40, y: 40 };
    }

    function pointer(event) {
      var pt = svg.createSVGPoint();
      pt.x = event.clientX;
      pt.y = event.clientY;
      return pt.matrixTransform(svg.getScreenCTM().inverse());
    }

    /* -- pointer events on the canvas -- */

    svg.addEventListener("pointerdown", function (event) {
      if (event.button !== 0) return;
      var node = event.target.closest(".process-node");
      var edge = event.target.closest(".process-edge");
      var id = node ? node.getAttribute("data-state") : null;
      if (connectFrom && node) {
        event.preventDefault();
        if (id !== connectFrom) {
          var problem = addTransition(connectFrom, id, "");
          endConnect(problem);
        }
        return;
      }
      if (node && event.target.closest(".process-handle")) {
        event.preventDefault();
        selected = id;
        startConnect(id);
        renderSelection();
        drag = { mode: "connect", id: id, moved: false };
        svg.setPointerCapture(event.pointerId);
        return;
      }
      if (node) {
        event.preventDefault();
        var s = stateById(id);
        var p = pointer(event);
        if (selected !== id) select(id);
        drag = { mode: "move", id: id, dx: p.x - s.x, dy: p.y - s.y, moved: false };
        svg.setPointerCapture(event.pointerId);
        return;
      }
      if (edge) {
        selected = null;
        selectedEdge = Number(edge.getAttribute("data-index"));
        render();
        return;
      }
      if (connectFrom) endConnect(texts.connect_cancelled);
      select(null);
    });

    svg.addEventListener("pointermove", function (event) {
      if (!drag && !connectFrom) return;
      var p = pointer(event);
      if (drag && drag.mode === "move") {
        var s = stateById(drag.id);
        var x = clamp(p.x - drag.dx);
        var y = clamp(p.y - drag.dy);
        if (x === s.x && y === s.y) return;
        s.x = x;
        s.y = y;
        drag.moved = true;
        var node = nodesLayer.querySelector('[data-state="' + CSS.escape(s.id) + '"]');
        if (node) node.setAttribute("transform", "translate(" + x + "," + y + ")");
        renderEdges();
        return;
      }
      if (connectFrom) {
        var from = center(stateById(connectFrom));
        rubber.setAttribute("x1", from.x);
        rubber.setAttribute("y1", from.y);
        rubber.setAttribute("x2", p.x);
        rubber.setAttribute("y2", p.y);
        rubber.setAttribute("visibility", "visible");
        if (drag) drag.moved = true;
      }
    });

    function endDrag(event, cancelled) {
      if (!drag) return;
      var current = drag;
      drag = null;
      if (svg.hasPointerCapture(event.pointerId)) svg.releasePointerCapture(event.pointerId);
      if (current.mode === "move") {
        if (current.moved) {
          markDirty();
          resizeCanvas();
        }
        return;
      }
      /* connect: released over another state adds the transition; a plain
       * click on the handle waits for a click on the target state. */
      if (cancelled) return endConnect(texts.connect_cancelled);
      var target = document.elementFromPoint(event.clientX, event.clientY);
      var node = target && target.closest ? target.closest(".process-node") : null;
      var id = node ? node.getAttribute("data-state") : null;
      if (id && id !== current.id) {
        endConnect(addTransition(current.id, id, ""));
      } else if (current.moved && !id) {
        endConnect(texts.connect_cancelled);
      } else {
        rubber.setAttribute("visibility", "hidden");
      }
    }

    svg.addEventListener("pointerup", function (event) {
      endDrag(event, false);
    });
    svg.addEventListener("pointercancel", function (event) {
      endDrag(event, true);
    });

    /* -- keyboard on the canvas -- */

    nodesLayer.addEventListener("keydown", function (event) {
      var node = event.target.closest(".process-node");
      if (!node) return;
      var id = node.getAttribute("data-state");
      var s = stateById(id);
      var step = event.shiftKey ? 50 : 10;
      var moves = {
        ArrowLeft: [-step, 0],
        ArrowRight: [step, 0],
        ArrowUp: [0, -step],
        ArrowDown: [0, step],
      };
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        if (connectFrom && connectFrom !== id) endConnect(addTransition(connectFrom, id, ""));
        else select(id, true);
      } else if (moves[event.key]) {
        event.preventDefault();
        s.x = clamp(s.x + moves[event.key][0]);
        s.y = clamp(s.y + moves[event.key][1]);
        selected = id;
        markDirty();
        select(id, true);
      }
    });

    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && connectFrom) endConnect(texts.connect_cancelled);
    });

    /* -- the side panel -- */

    $("process-selected-label").addEventListener("input", function (event) {
      var s = stateById(selected);
      var value = event.target.value.trim();
      var ok = value.length > 0 && chars(value) <= 80;
      event.target.setAttribute("aria-invalid", ok ? "false" : "true");
      if (!s || !ok) return;
      s.label = value;
      markDirty();
      render();
    });

    $("process-make-initial").addEventListener("click", function () {
      model.states.forEach(function (s) {
        s.initial = s.id === selected;
      });
      markDirty();
      render();
      announce(format(texts.initial_set, { state: stateById(selected).label }));
    });

    $("process-connect").addEventListener("click", function () {
      if (selected) startConnect(selected);
    });

    $("process-delete-state").addEventListener("click", function () {
      var s = stateById(selected);
      if (!s) return;
      var removed = model.transitions.filter(function (t) {
        return t.from === s.id || t.to === s.id;
      }).length;
      model.states = model.states.filter(function (x) {
        return x !== s;
      });
      model.transitions = model.transitions.filter(function (t) {
        return t.from !== s.id && t.to !== s.id;
      });
      if (connectFrom === s.id) connectFrom = null;
      selected = null;
      markDirty();
      render();
      announce(format(texts.state_deleted, { state: s.label, n: removed }));
    });

    $("process-add-state").addEventListener("submit", function (event) {
      event.preventDefault();
      var idInput = $("process-new-state-id");
      var labelInput = $("process-new-state-label");
      var error = $("process-add-state-error");
      var id = idInput.value.trim();
      var label = labelInput.value.trim();
      error.textContent = "";
      if (!ID_RE.test(id)) error.textContent = texts.id_invalid;
      else if (stateById(id)) error.textContent = format(texts.id_taken, { id: id });
      else if (!label || chars(label) > 80) error.textContent = texts.label_invalid;
      if (error.textContent) return;
      var spot = freeSpot();
      model.states.push({
        id: id,
        label: label,
        x: spot.x,
        y: spot.y,
        initial: model.states.length === 0,
      });
      idInput.value = "";
      labelInput.value = "";
      markDirty();
      select(id);
      announce(format(texts.state_added, { state: label }));
      idInput.focus();
    });

    $("process-add-transition").addEventListener("submit", function (event) {
      event.preventDefault();
      var error = $("process-add-transition-error");
      var labelInput = $("process-transition-label");
      var label = labelInput.value.trim();
      error.textContent = "";
      if (chars(label) > 80) {
        error.textContent = texts.label_invalid;
        return;
      }
      var problem = addTransition(
        $("process-transition-from").value,
        $("process-transition-to").value,
        label,
      );
      if (problem) error.textContent = problem;
      else labelInput.value = "";
    });

    /* -- saving -- */

    function definition() {
      return {
        states: model.states.map(function (s) {
          var out = { id: s.id, label: s.label, x: s.x, y: s.y };
          if (s.initial) out.initial = true;
          return out;
        }),
        transitions: model.transitions.map(function (t) {
          var out = { from: t.from, to: t.to };
          if (t.label) out.label = t.label;
          return out;
        }),
      };
    }

    function showResult(ok, message, problems) {
      var result = $("process-result");
      var list = $("process-result-problems");
      result.textContent = message;
      result.className = "process-result " + (ok ? "process-ok" : "process-failed");
      list.textContent = "";
      (problems || []).forEach(function (text) {
        var li = document.createElement("li");
        li.textContent = text;
        list.appendChild(li);
      });
    }

    $("process-save").addEventListener("click", function () {
      var button = $("process-save");
      var name = $("process-name").value;
      button.disabled = true;
      root.setAttribute("aria-busy", "true");
      showResult(true, texts.saving, []);
      fetch(saveUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ name: name, definition: definition() }),
      })
        .then(function (response) {
          return response.text().then(function (body) {
            var answer = null;
            try {
              answer = JSON.parse(body);
            } catch (e) {
              answer = null;
            }
            if (response.ok && answer && answer.ok) {
              dirty = false;
              root.classList.remove("process-dirty");
              $("process-heading-name").textContent = name.trim();
              showResult(
                true,
                format(texts.saved, { states: answer.states, transitions: answer.transitions }),
                [],
              );
            } else {
              var error = (answer && answer.error) || {};
              showResult(
                false,
                error.message || format(texts.failed, { status: response.status }),
                error.problems,
              );
            }
          });
        })
        .catch(function () {
          showResult(false, texts.network, []);
        })
        .finally(function () {
          button.disabled = false;
          root.removeAttribute("aria-busy");
        });
    });

    window.addEventListener("beforeunload", function (event) {
      if (!dirty) return;
      event.preventDefault();
      event.returnValue = texts.unsaved;
    });

    render();
  }

  function init() {
    initConfirm();
    var root = document.getElementById("process-designer");
    if (root) Designer(root);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
