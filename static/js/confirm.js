/* Asks before a form with data-confirm is sent: `<form data-confirm="Delete this?">`. A static
   file, not an onsubmit attribute: the Content-Security-Policy runs no inline script. */
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });
})();
