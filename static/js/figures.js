/* Draws the Plotly figures of a page: each `div.js-plotly-figure` names, in data-figure, the
   JSON script element that holds its spec ({data, layout, config}; built by reviews/figures.py).
   Runs on page load and on every fragment htmx swaps in (the what-if result, the policy
   simulation); plotly.min.js is a local static file, loaded before this one. */
(function () {
  "use strict";

  function draw(root) {
    var scope = root && root.querySelectorAll ? root : document;
    var divs = Array.prototype.slice.call(scope.querySelectorAll("div.js-plotly-figure"));
    if (scope.matches && scope.matches("div.js-plotly-figure")) { divs.push(scope); }
    divs.forEach(function (div) {
      var spec = document.getElementById(div.dataset.figure);
      if (!spec || div.dataset.drawn) { return; }
      var figure = JSON.parse(spec.textContent);
      div.dataset.drawn = "true";
      Plotly.newPlot(div, figure.data, figure.layout, figure.config);
    });
  }

  if (window.htmx) {
    htmx.onLoad(draw);  // fires for the whole body once htmx is ready, then per swapped fragment
  } else {
    document.addEventListener("DOMContentLoaded", function () { draw(document); });
  }
})();
