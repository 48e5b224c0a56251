/*
 * Progressive enhancement for the search box: autocomplete from /api/suggest.
 *
 * Without this file everything still works (the box is a plain GET form).
 * Suggestions go into a <datalist>, which the browser shows as an accessible,
 * keyboard-usable list (arrow keys to choose, Enter to search).
 */
(function () {
  "use strict";

  var DELAY_MS = 150;
  var MIN_CHARS = 2;

  function enhance(input) {
    var list = document.createElement("datalist");
    list.id = input.id + "-suggestions";
    input.insertAdjacentElement("afterend", list);
    input.setAttribute("list", list.id);

    var timer = null;
    var pending = null;
    var lastAsked = null;

    function show(words) {
      list.replaceChildren.apply(list, words.map(function (word) {
        var option = document.createElement("option");
        option.value = word;
        return option;
      }));
    }

    function ask() {
      var text = input.value;
      var last = text.slice(text.lastIndexOf(" ") + 1);
      if (text === lastAsked) {
        return;
      }
      lastAsked = text;
      if (last.length < MIN_CHARS) {
        show([]);
        return;
      }
      if (pending) {
        pending.abort();
      }
      pending = new AbortController();
      fetch("/api/suggest?q=" + encodeURIComponent(text), {
        signal: pending.signal,
        headers: { "Accept": "application/json" }
      })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          // Only the answer for what is in the box now is shown.
          if (data && data.query === input.value && Array.isArray(data.suggestions)) {
            show(data.suggestions);
          }
        })
        .catch(function () { /* aborted or offline: the box works without suggestions */ });
    }

    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(ask, DELAY_MS);
    });
  }

  document.querySelectorAll("form.searchbox input[name=q]").forEach(enhance);
}());
