// The web kit's one script: Copy buttons of "shown once" secret panels. Pages work without it:
// the buttons stay hidden and the secret is selected and copied by hand. Inlined and allowed
// by its SHA-256 in the Content-Security-Policy.
(function () {
  "use strict";
  if (!window.isSecureContext || !navigator.clipboard) {
    return;
  }
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var id = button.getAttribute("data-copy");
    var secret = document.getElementById(id);
    var status = document.getElementById(id + "-copied");
    if (!secret || !status) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(secret.textContent.trim()).then(
        function () {
          status.textContent = "Copied.";
        },
        function () {
          status.textContent = "Could not copy: select the text and copy it by hand.";
        }
      );
    });
  });
})();
