// The contacts Configuration window (SPEC R4.2): rows of CRM field, Outlook field and
// direction; add, remove, reset to the default, preview on a real contact, save. The server
// decides whether a mapping can work; this script only sends it and shows the answer.
(function () {
  "use strict";
  var form = document.getElementById("mapping-form");
  if (!form || !window.fetch) { return; }
  var url = form.getAttribute("data-url");
  var csrf = form.getAttribute("data-csrf");
  var body = document.getElementById("pairs");
  var template = document.getElementById("pair-template");
  var problems = document.getElementById("problems");
  var notice = document.getElementById("notice");

  function text(name, values) {
    var value = form.getAttribute("data-text-" + name) || "";
    Object.keys(values || {}).forEach(function (key) { value = value.split("{" + key + "}").join(values[key]); });
    return value;
  }

  function rows() { return Array.prototype.slice.call(body.querySelectorAll("tr[data-row]")); }

  function renumber() {
    rows().forEach(function (row, index) {
      var n = String(index + 1);
      row.querySelector('select[name="crm_field"]').setAttribute("aria-label", text("crm-row", { n: n }));
      row.querySelector('select[name="graph_field"]').setAttribute("aria-label", text("graph-row", { n: n }));
      row.querySelector('select[name="direction"]').setAttribute("aria-label", text("direction-row", { n: n }));
      row.querySelector("button[data-remove]").setAttribute("aria-label", text("remove-row", { n: n }));
    });
  }

  function choose(select, value) {
    if (!value) { select.selectedIndex = 0; return; }
    var found = Array.prototype.some.call(select.options, function (option) { return option.value === value; });
    if (!found) { select.add(new Option(value, value)); }
    select.value = value;
  }

  function addRow(pair) {
    var row = template.content.firstElementChild.cloneNode(true);
    body.appendChild(row);
    if (pair) {
      choose(row.querySelector('select[name="crm_field"]'), pair.crm_field);
      choose(row.querySelector('select[name="graph_field"]'), pair.graph_field);
      choose(row.querySelector('select[name="direction"]'), pair.direction);
    }
    renumber();
    return row;
  }

  function collect() {
    return { pairs: rows().map(function (row) {
      return {
        crm_field: row.querySelector('select[name="crm_field"]').value,
        graph_field: row.querySelector('select[name="graph_field"]').value,
        direction: row.querySelector('select[name="direction"]').value
      };
    }) };
  }

  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } }

  function showProblems(list) {
    clear(problems);
    rows().forEach(function (row) { row.classList.remove("problem"); });
    (list || []).forEach(function (problem) {
      var item = document.createElement("li");
      item.textContent = problem.message;
      item.setAttribute("data-code", problem.code);
      item.setAttribute("data-field", problem.field);
      problems.appendChild(item);
      rows().forEach(function (row) {
        var name = problem.side === "outlook" ? "graph_field" : "crm_field";
        if (row.querySelector('select[name="' + name + '"]').value === problem.field) { row.classList.add("problem"); }
      });
    });
  }

  function showPreview(preview) {
    var source = document.getElementById("preview-source");
    var target = document.getElementById("preview-rows");
    source.textContent = preview && preview.source ? text("preview-source", { name: preview.source.name }) : text("preview-none");
    clear(target);
    ((preview && preview.rows) || []).forEach(function (row) {
      var tr = document.createElement("tr");
      if (row.problem) { tr.className = "problem"; }
      [row.field, row.value, row.problem ? row.problem.message : ""].forEach(function (value) {
        var td = document.createElement("td");
        td.textContent = value;
        tr.appendChild(td);
      });
      target.appendChild(tr);
    });
  }

  function send(method, target, payload) {
    return fetch(target, {
      method: method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf },
      body: payload === undefined ? undefined : JSON.stringify(payload)
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (json) {
        return { status: response.status, body: json };
      });
    });
  }

  function failed(answer) {
    notice.textContent = (answer && answer.body && answer.body.error) || text("failed");
  }

  function preview() {
    notice.textContent = "";
    return send("POST", url + "/preview", collect()).then(function (answer) {
      if (answer.status !== 200) { showProblems(answer.body.problems); failed(answer); return; }
      showProblems(answer.body.problems);
      showPreview(answer.body.preview);
    }, failed);
  }

  body.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-remove]");
    if (!button) { return; }
    // Keyboard users keep their place: focus goes to the next pair's Remove, else the
    // previous one's, else Add a field (a removed button would drop focus to the page).
    var row = button.closest("tr");
    var next = row.nextElementSibling || row.previousElementSibling;
    row.remove();
    renumber();
    (next ? next.querySelector("button[data-remove]") : document.getElementById("add-pair")).focus();
  });

  document.getElementById("add-pair").addEventListener("click", function () {
    addRow(null).querySelector("select").focus();
  });

  document.getElementById("reset-pairs").addEventListener("click", function () {
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) { if (!response.ok) { throw new Error(String(response.status)); } return response.json(); })
      .then(function (json) {
        clear(body);
        json["default"].pairs.forEach(addRow);
        showProblems([]);
        notice.textContent = text("reset");
      })
      .catch(function () { failed(null); });
  });

  document.getElementById("preview-pairs").addEventListener("click", preview);

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    notice.textContent = "";
    send("PUT", url, collect()).then(function (answer) {
      if (answer.status === 200) {
        showProblems([]);
        notice.textContent = answer.body.message;
        return preview().then(function () { notice.textContent = answer.body.message; });
      }
      showProblems(answer.body.problems);
      failed(answer);
    }, failed);
  });
}());
