/* Review workspace: keyboard shortcuts on the queue, decision tabs on the member page, and
   showing 400/403/409/429 answers of htmx requests (htmx does not swap error responses). */
(function () {
  "use strict";

  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if (status === 400 || status === 403 || status === 409 || status === 429) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // --- queue --------------------------------------------------------------------------------
  var selected = -1;

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("tr.queue-row"));
  }

  function select(index) {
    var all = rows();
    if (!all.length) { selected = -1; return null; }
    selected = Math.max(0, Math.min(index, all.length - 1));
    all.forEach(function (row, i) { row.classList.toggle("selected", i === selected); });
    all[selected].scrollIntoView({ block: "nearest" });
    return all[selected];
  }

  function current() {
    var all = rows();
    if (selected < 0 || selected >= all.length) { return null; }
    return all[selected];
  }

  function updateSelectedCount() {
    var label = document.querySelector("[data-role=selected-count]");
    if (!label) { return; }
    var count = document.querySelectorAll("tr.queue-row input[name=review]:checked").length;
    label.textContent = count ? count + " selected" : "";
  }

  // A row's member, page and quick-decide URL are read from its link and its approve button,
  // not repeated in data attributes (each repeated value costs rendering time on every row).
  function memberLink(row) { return row.querySelector("a.member"); }

  function quickDecideUrl(row) {
    var approveButton = row.querySelector("[data-action=approve]");
    if (approveButton) { return approveButton.getAttribute("hx-post"); }
    // A blind row has no approve button: its escalate button carries the URL.
    return row.querySelector("[data-action=escalate]").dataset.quickUrl;
  }

  function approve(row) {
    var button = row.querySelector("[data-action=approve]");
    if (button) { button.click(); }
  }

  function escalate(row) {
    var dialog = document.getElementById("escalate-dialog");
    if (!dialog || !row.querySelector("[data-action=escalate]")) { return; }
    dialog.querySelector("[data-role=member]").textContent = "Member " + memberLink(row).textContent;
    dialog.querySelector("textarea").value = "";
    dialog.returnValue = "";
    dialog.onclose = function () {
      if (dialog.returnValue !== "ok") { return; }
      htmx.ajax("POST", quickDecideUrl(row), {
        source: row,
        target: row,
        swap: "outerHTML",
        values: {
          verdict: "escalate",
          reason: dialog.querySelector("select[name=reason]").value,
          comment: dialog.querySelector("textarea").value
        }
      });
    };
    dialog.showModal();
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-action=escalate]");
    if (button) { escalate(button.closest("tr.queue-row")); return; }
    var row = event.target.closest("tr.queue-row");
    if (row && !event.target.closest("button, a, input")) {
      select(rows().indexOf(row));
    }
  });

  document.addEventListener("change", function (event) {
    if (event.target.matches("tr.queue-row input[name=review]")) { updateSelectedCount(); }
  });

  // A decided row is removed: keep the selection on the row that took its place.
  document.addEventListener("htmx:afterSettle", function () {
    if (selected >= 0 && rows().length) { select(selected); }
    updateSelectedCount();
  });

  document.addEventListener("keydown", function (event) {
    if (!document.querySelector("tr.queue-row")) { return; }
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (event.target.closest("input, select, textarea, dialog")) { return; }
    var row = current();
    switch (event.key) {
      case "j": select(selected + 1); break;
      case "k": select(selected < 0 ? 0 : selected - 1); break;
      case "Enter":
      case "o": if (row) { window.location.href = memberLink(row).href; } break;
      case "a": if (row) { approve(row); } break;
      case "e": if (row) { escalate(row); } break;
      case "x":
        if (row) {
          var box = row.querySelector("input[name=review]");
          if (box) {  // a blind row cannot be selected for bulk approval
            box.checked = !box.checked;
            updateSelectedCount();
          }
        }
        break;
      default: return;
    }
    event.preventDefault();
  });

  // --- member page: one decision form at a time ----------------------------------------------
  function showVerdict(verdict) {
    document.querySelectorAll(".verdict-tab").forEach(function (tab) {
      tab.classList.toggle("active", tab.dataset.verdict === verdict);
      tab.setAttribute("aria-selected", tab.dataset.verdict === verdict ? "true" : "false");
    });
    document.querySelectorAll("form.decision-form").forEach(function (form) {
      form.hidden = form.dataset.verdict !== verdict;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var active = document.querySelector(".verdict-tab.active");
    if (active) { showVerdict(active.dataset.verdict); }
    document.querySelectorAll(".verdict-tab").forEach(function (tab) {
      tab.addEventListener("click", function () { showVerdict(tab.dataset.verdict); });
    });
  });
})();
