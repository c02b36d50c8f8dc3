/* faq: asks before a form with data-confirm is sent (the delete buttons on the manage page).
   Without JavaScript the forms work the same, just without the question. */
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
