// Prompt pinning report: sorting, filtering, paging, the convergence chart and copy buttons.
// All run data comes from the JSON block; it only ever enters the page as text (textContent,
// attribute properties), never as markup.
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("pp-data").textContent);
  var SVG_NS = "http://www.w3.org/2000/svg";
  var bestId = data.best ? data.best.id : null;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svg(tag, attributes, className) {
    var node = document.createElementNS(SVG_NS, tag);
    Object.keys(attributes || {}).forEach(function (name) {
      node.setAttribute(name, String(attributes[name]));
    });
    if (className) node.setAttribute("class", className);
    return node;
  }

  function fixed(value, digits) {
    return value === null || value === undefined ? "\u2014" : Number(value).toFixed(digits);
  }

  function isMissing(value) {
    return value === null || value === undefined || value === "" || (typeof value === "number" && isNaN(value));
  }

  // Compare two values in a direction (1 or -1); missing values always go last.
  function directed(a, b, direction) {
    if (isMissing(a) && isMissing(b)) return 0;
    if (isMissing(a)) return 1;
    if (isMissing(b)) return -1;
    if (typeof a === "number" && typeof b === "number") return direction * (a - b);
    return direction * String(a).localeCompare(String(b));
  }

  function markSorted(headerCells, column, direction) {
    Array.prototype.forEach.call(headerCells, function (cell, index) {
      if (index === column) cell.setAttribute("aria-sort", direction > 0 ? "ascending" : "descending");
      else cell.removeAttribute("aria-sort");
    });
  }

  // ---- copy buttons -------------------------------------------------------------------
  function fallbackCopy(text) {
    var area = el("textarea", "offscreen");
    area.value = text;
    area.setAttribute("readonly", "");
    document.body.appendChild(area);
    area.select();
    var copied = false;
    try {
      copied = document.execCommand("copy");
    } catch (error) {
      copied = false;
    }
    document.body.removeChild(area);
    return copied;
  }

  function copyText(text, button) {
    var label = button.textContent;
    function done(copied) {
      button.textContent = copied ? "Copied" : "Select and copy by hand";
      window.setTimeout(function () { button.textContent = label; }, 1600);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { done(true); },
        function () { done(fallbackCopy(text)); }
      );
    } else {
      done(fallbackCopy(text));
    }
  }

  Array.prototype.forEach.call(document.querySelectorAll("button[data-copy]"), function (button) {
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (source) copyText(source.textContent, button);
    });
  });

  // ---- tables sorted in place (units) ---------------------------------------------------
  function makeSortable(table) {
    var headerCells = table.tHead.rows[0].cells;
    var state = { column: -1, direction: 1 };
    Array.prototype.forEach.call(headerCells, function (cell, column) {
      cell.querySelector("button").addEventListener("click", function () {
        state.direction = state.column === column ? -state.direction : 1;
        state.column = column;
        var numeric = cell.getAttribute("data-type") === "num";
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (left, right) {
          var a = left.cells[column].getAttribute("data-v");
          var b = right.cells[column].getAttribute("data-v");
          if (numeric) {
            a = a === "" ? null : parseFloat(a);
            b = b === "" ? null : parseFloat(b);
          }
          return directed(a, b, state.direction);
        });
        rows.forEach(function (row) { body.appendChild(row); });
        markSorted(headerCells, column, state.direction);
      });
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), makeSortable);

  // ---- convergence chart --------------------------------------------------------------
  function niceTicks(low, high, count) {
    var span = high - low || 1;
    var step = Math.pow(10, Math.floor(Math.log10(span / count)));
    [1, 2, 5, 10].some(function (factor) {
      if (span / (step * factor) <= count) { step *= factor; return true; }
      return false;
    });
    var ticks = [];
    for (var value = Math.ceil(low / step) * step; value <= high + step * 1e-9; value += step) ticks.push(value);
    return { ticks: ticks, step: step };
  }

  // Each point is paired: a generation's improvement over the unmodified prompt on that
  // generation's own seeds, and the best validated so far against it on the validation seeds.
  var SERIES = [
    { key: "gain", cls: "series-best", label: "generation best (its own seeds)", dots: true },
    { key: "gain_median", cls: "series-median", label: "generation median (its own seeds)" },
    { key: "val_gain", cls: "series-val", label: "best validated so far (validation seeds)", dots: true }
  ];

  function legendSwatch(cls, dots) {
    var sample = svg("svg", { width: 30, height: 12, viewBox: "0 0 30 12" });
    sample.setAttribute("class", "swatch");
    sample.appendChild(svg("line", { x1: 1, x2: 29, y1: 6, y2: 6 }, cls));
    if (dots) sample.appendChild(svg("circle", { cx: 15, cy: 6, r: 3 }, cls + " dot"));
    return sample;
  }

  function drawConvergence(root, points) {
    var usable = points.filter(function (p) {
      return SERIES.some(function (s) { return !isMissing(p[s.key]); });
    });
    var missing = points.filter(function (p) { return isMissing(p.gain); }).length;
    var note = el("p", "muted chart-note");
    if (!points.length) note.textContent = "No generations yet.";
    else if (!missing) note.textContent = "Every point compares losses on the same seeds: a generation's individuals " +
      "against the unmodified prompt rendered on that generation's seeds; validation against it on the validation seeds.";
    else note.textContent = missing + " of " + points.length + " generations have no training point: the unmodified " +
      "prompt was not scored on their seeds (only the fade guard, without target images, renders it there)" +
      (usable.length ? "; validation points compare on the validation seeds." : "; nothing here is paired.");
    root.appendChild(note);
    if (!usable.length) return;
    var width = 820, height = 300, left = 72, right = 16, top = 14, bottom = 40;
    var gens = usable.map(function (p) { return p.g; });
    var values = [0];
    usable.forEach(function (p) { SERIES.forEach(function (s) { if (!isMissing(p[s.key])) values.push(100 * p[s.key]); }); });
    var gLow = Math.min.apply(null, gens), gHigh = Math.max.apply(null, gens);
    if (gHigh === gLow) gHigh = gLow + 1;
    var vLow = Math.min.apply(null, values), vHigh = Math.max.apply(null, values);
    var pad = (vHigh - vLow) * 0.08 || Math.abs(vHigh) * 0.1 || 1;
    vLow -= pad;
    vHigh += pad;
    function x(g) { return left + (g - gLow) / (gHigh - gLow) * (width - left - right); }
    function y(v) { return top + (vHigh - v) / (vHigh - vLow) * (height - top - bottom); }

    var chart = svg("svg", { viewBox: "0 0 " + width + " " + height, preserveAspectRatio: "xMidYMid meet" });
    var yTicks = niceTicks(vLow, vHigh, 6);
    var digits = Math.max(0, Math.min(6, -Math.floor(Math.log10(yTicks.step))));
    yTicks.ticks.forEach(function (value) {
      chart.appendChild(svg("line", { x1: left, x2: width - right, y1: y(value), y2: y(value) }, "grid"));
      var label = svg("text", { x: left - 6, y: y(value) + 4, "text-anchor": "end" }, "tick");
      label.textContent = signed(value, digits);
      chart.appendChild(label);
    });
    var gStep = Math.max(1, Math.ceil((gHigh - gLow) / 10));
    for (var g = Math.ceil(gLow); g <= gHigh; g += gStep) {
      var genLabel = svg("text", { x: x(g), y: height - bottom + 18, "text-anchor": "middle" }, "tick");
      genLabel.textContent = String(g);
      chart.appendChild(genLabel);
    }
    var axisLabel = svg("text", { x: (left + width - right) / 2, y: height - 4, "text-anchor": "middle" }, "axis-label");
    axisLabel.textContent = "generation";
    chart.appendChild(axisLabel);
    var yMid = (top + height - bottom) / 2;
    var yTitle = svg("text", { x: 14, y: yMid, "text-anchor": "middle", transform: "rotate(-90 14 " + yMid + ")" }, "axis-label y-title");
    yTitle.textContent = "improvement, same seeds (%)";
    chart.appendChild(yTitle);
    chart.appendChild(svg("line", { x1: left, x2: left, y1: top, y2: height - bottom }, "axis"));
    chart.appendChild(svg("line", { x1: left, x2: width - right, y1: height - bottom, y2: height - bottom }, "axis"));
    chart.appendChild(svg("line", { x1: left, x2: width - right, y1: y(0), y2: y(0) }, "series-baseline"));

    SERIES.forEach(function (s) {
      var commands = [];
      usable.forEach(function (p) {
        if (!isMissing(p[s.key])) commands.push((commands.length ? "L" : "M") + x(p.g).toFixed(1) + " " + y(100 * p[s.key]).toFixed(1));
      });
      if (commands.length) chart.appendChild(svg("path", { d: commands.join(" ") }, s.cls));
      if (!s.dots) return;
      usable.forEach(function (p) {
        if (isMissing(p[s.key])) return;
        var dot = svg("circle", { cx: x(p.g), cy: y(100 * p[s.key]), r: 3 }, s.cls + " dot");
        var tip = svg("title");
        tip.textContent = s.key === "val_gain"
          ? "after generation " + p.g + ": best validated " + fixed(p.val, 5) + " vs unmodified " + fixed(p.val_unmodified, 5) + " on the validation seeds"
          : "generation " + p.g + " (seeds from " + p.seed + "): best " + fixed(p.min, 5) + ", median " + fixed(p.median, 5) +
            ", unmodified prompt " + fixed(p.unmodified, 5) + " on the same seeds";
        dot.appendChild(tip);
        chart.appendChild(dot);
      });
    });
    root.appendChild(chart);

    var legend = el("ul", "legend");
    SERIES.concat([{ cls: "series-baseline", label: "unmodified prompt (0%)" }]).forEach(function (item) {
      if (item.key && !usable.some(function (p) { return !isMissing(p[item.key]); })) return;
      var entry = el("li");
      entry.appendChild(legendSwatch(item.cls, item.dots));
      entry.appendChild(document.createTextNode(item.label));
      legend.appendChild(entry);
    });
    root.appendChild(legend);
  }

  function signed(value, digits) {
    var text = value.toFixed(digits);
    if (/^-0(\.0*)?$/.test(text)) text = text.slice(1);
    return (value > 0 && Number(text) !== 0 ? "+" : "") + text;
  }

  drawConvergence(document.getElementById("convergence"), data.convergence || []);

  // ---- individuals: filter, sort, page --------------------------------------------------
  var rows = (data.rows || []).map(function (row) {
    var copy = Object.assign({}, row);
    // paired: against the unmodified prompt on this row's own seeds (none where it was not scored there)
    var reference = (data.row_baselines || {})[String(row.g)];
    copy.delta = isMissing(row.loss) || isMissing(reference) || !reference ? null : 100 * (row.loss - reference) / reference;
    copy.haystack = [row.pos, row.neg, row.id].join("\n").toLowerCase();
    copy.tagtext = row.tags ? Object.keys(row.tags).map(function (tag) {
      var p = row.tags[tag], base = ((data.baseline && data.baseline.tags) || {})[tag];
      return tag + " " + fixed(p, 3) + (isMissing(base) ? "" : " (" + signed(p - base, 3) + ")");
    }).join(", ") : "";
    return copy;
  });
  var hasSize = rows.some(function (row) { return !isMissing(row.size); });
  var columns = [
    { key: "g", label: "Gen", type: "num" },
    { key: "i", label: "#", type: "num" },
    // not sortable: rows of different generations were scored on different seeds
    { key: "loss", label: "Loss (own seeds)" },
    { key: "delta", label: "Loss vs original, same seeds", type: "num" },
  ];
  if (hasSize) columns.push({ key: "size", label: "Size", type: "num" });
  var hasTags = rows.some(function (row) { return row.tags; });
  if (hasTags) columns.push({ key: "tagtext", label: "Tags: mean p (vs original)", type: "text" });
  columns.push({ key: "pos", label: "Prompt", type: "text" }, { key: "gif", label: "Images" }, { key: "plot", label: "Loss plot" });

  var table = document.getElementById("ind-table");
  var filterInput = document.getElementById("ind-filter");
  var pageSizeSelect = document.getElementById("ind-page-size");
  var state = { sortKey: "g", direction: 1, filter: "", page: 0, pageSize: parseInt(pageSizeSelect.value, 10) };
  var shown = rows;

  var headerRow = table.tHead.rows[0];
  columns.forEach(function (column) {
    var cell = el("th");
    cell.setAttribute("scope", "col");
    if (column.type) {
      var button = el("button", null, column.label);
      button.type = "button";
      button.addEventListener("click", function () { sortBy(column.key); });
      cell.appendChild(button);
    } else {
      cell.textContent = column.label;
    }
    headerRow.appendChild(cell);
  });

  function matches(row, filter) {
    if (!filter) return true;
    var generation = /^g:\s*(\d+)$/.exec(filter);
    if (generation) return row.g === parseInt(generation[1], 10);
    return row.haystack.indexOf(filter) !== -1;
  }

  function applyFilterAndSort() {
    var filter = state.filter;
    shown = rows.filter(function (row) { return matches(row, filter); });
    var key = state.sortKey, direction = state.direction;
    shown.sort(function (a, b) {
      return directed(a[key], b[key], direction) || (a.g - b.g) || (a.i - b.i);
    });
  }

  function mediaCell(href, src, alt, width, height) {
    var cell = el("td", "media");
    var link = el("a");
    link.href = href;
    var image = el("img");
    image.loading = "lazy";
    image.decoding = "async";
    image.width = width;
    image.height = height;
    image.alt = alt;
    image.src = src;
    link.appendChild(image);
    cell.appendChild(link);
    return cell;
  }

  function rowElement(row) {
    var line = el("tr", row.id === bestId ? "is-best" : "");
    line.appendChild(el("td", "num", row.g));
    line.appendChild(el("td", "num", row.i));
    line.appendChild(el("td", "num loss", fixed(row.loss, 5)));
    var delta = el("td", "num delta " + (row.delta < 0 ? "down" : row.delta > 0 ? "up" : ""),
                   isMissing(row.delta) ? "\u2014" : signed(row.delta, 1) + "%");
    if (!isMissing(row.delta)) delta.dataset.v = String(row.delta);
    line.appendChild(delta);
    if (hasSize) line.appendChild(el("td", "num", fixed(row.size, 3)));
    if (hasTags) line.appendChild(el("td", "tag-cell", row.tagtext || "\u2014"));
    var promptCell = el("td", "prompt-cell");
    var positive = el("div", "prompt-text", row.pos);
    positive.title = row.pos;
    promptCell.appendChild(positive);
    if (row.neg) {
      var negative = el("div", "prompt-neg", "Negative: " + row.neg);
      negative.title = row.neg;
      promptCell.appendChild(negative);
    }
    promptCell.appendChild(el("div", "row-id", row.id));
    line.appendChild(promptCell);
    if (row.dir) {
      line.appendChild(mediaCell(row.dir + "/summary.gif", row.dir + "/summary.gif", "images of " + row.id, 96, 96));
      line.appendChild(mediaCell(row.dir + "/loss_plot.png", row.dir + "/loss_plot.png", "loss plot of " + row.id, 160, 64));
    } else {
      line.appendChild(el("td", "muted", "\u2014"));
      line.appendChild(el("td", "muted", "\u2014"));
    }
    return line;
  }

  function render() {
    var pages = Math.max(1, Math.ceil(shown.length / state.pageSize));
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    var start = state.page * state.pageSize;
    var fragment = document.createDocumentFragment();
    shown.slice(start, start + state.pageSize).forEach(function (row) { fragment.appendChild(rowElement(row)); });
    var body = table.tBodies[0];
    body.textContent = "";
    body.appendChild(fragment);
    document.getElementById("ind-page").textContent = "Page " + (state.page + 1) + " of " + pages;
    document.getElementById("ind-count").textContent = shown.length + " of " + rows.length + " individuals";
    document.getElementById("ind-prev").disabled = state.page === 0;
    document.getElementById("ind-next").disabled = state.page >= pages - 1;
    var column = -1;
    columns.forEach(function (c, index) { if (c.key === state.sortKey) column = index; });
    markSorted(headerRow.cells, column, state.direction);
  }

  function sortBy(key) {
    state.direction = state.sortKey === key ? -state.direction : 1;
    state.sortKey = key;
    state.page = 0;
    applyFilterAndSort();
    render();
  }

  var filterTimer = null;
  filterInput.addEventListener("input", function () {
    window.clearTimeout(filterTimer);
    filterTimer = window.setTimeout(function () {
      state.filter = filterInput.value.trim().toLowerCase();
      state.page = 0;
      applyFilterAndSort();
      render();
    }, 120);
  });
  pageSizeSelect.addEventListener("change", function () {
    state.pageSize = parseInt(pageSizeSelect.value, 10);
    state.page = 0;
    render();
  });
  document.getElementById("ind-prev").addEventListener("click", function () { state.page -= 1; render(); });
  document.getElementById("ind-next").addEventListener("click", function () { state.page += 1; render(); });

  applyFilterAndSort();
  render();

  // A small handle for people (and tests) poking at the page from the console.
  window.ppReport = {
    sortBy: sortBy,
    setFilter: function (text) {
      state.filter = String(text).trim().toLowerCase();
      state.page = 0;
      applyFilterAndSort();
      render();
    },
    shownCount: function () { return shown.length; },
  };
  document.documentElement.setAttribute("data-pp-ready", "1");
})();
