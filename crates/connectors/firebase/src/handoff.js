// Keybridge's Firebase hand-off: the Firebase JS SDK (compat build) signs the person in with a
// popup, then this script posts the ID token and refresh token to Keybridge with the CSRF token
// of the authorization request. Served as a static file: the page allows no inline script.
(function () {
  "use strict";
  var root = document.getElementById("keybridge-handoff");
  var errorBox = document.getElementById("keybridge-error");
  if (!root) return;

  function showError(message) {
    if (!errorBox) return;
    errorBox.textContent = message;
    errorBox.hidden = false;
  }

  var cfg;
  try {
    cfg = JSON.parse(root.getAttribute("data-config") || "{}");
  } catch (e) {
    showError("This sign-in page is misconfigured.");
    return;
  }
  if (typeof firebase === "undefined" || !firebase.initializeApp || !firebase.auth) {
    showError("The Firebase sign-in library could not be loaded. Please check your connection and reload.");
    return;
  }

  var app = firebase.initializeApp(
    { apiKey: cfg.apiKey, authDomain: cfg.authDomain, projectId: cfg.projectId },
    "keybridge"
  );
  var auth = app.auth();
  if (cfg.emulatorUrl) {
    auth.useEmulator(cfg.emulatorUrl, { disableWarnings: true });
  }

  function providerFor(id) {
    switch (id) {
      case "google.com": return new firebase.auth.GoogleAuthProvider();
      case "github.com": return new firebase.auth.GithubAuthProvider();
      case "facebook.com": return new firebase.auth.FacebookAuthProvider();
      case "twitter.com": return new firebase.auth.TwitterAuthProvider();
      default:
        if (id.indexOf("saml.") === 0) return new firebase.auth.SAMLAuthProvider(id);
        return new firebase.auth.OAuthProvider(id);
    }
  }

  function post(fields) {
    var form = document.createElement("form");
    form.method = "post";
    form.action = root.getAttribute("data-action");
    Object.keys(fields).forEach(function (name) {
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = fields[name];
      form.appendChild(input);
    });
    document.body.appendChild(form);
    form.submit();
  }

  var buttons = [];
  function busy(on) {
    buttons.forEach(function (b) { b.disabled = on; });
  }

  function signIn(id) {
    busy(true);
    if (errorBox) errorBox.hidden = true;
    // Keep no Firebase session on Keybridge's origin: the tokens go to Keybridge and nowhere else.
    auth.setPersistence(firebase.auth.Auth.Persistence.NONE)
      .then(function () { return auth.signInWithPopup(providerFor(id)); })
      .then(function (result) {
        var user = result.user;
        return user.getIdToken().then(function (idToken) {
          var refreshToken = user.refreshToken || "";
          return auth.signOut().then(function () {
            post({
              req: root.getAttribute("data-req"),
              csrf: root.getAttribute("data-csrf"),
              token: JSON.stringify({ idToken: idToken, refreshToken: refreshToken }),
            });
          });
        });
      })
      .catch(function (e) {
        busy(false);
        var code = (e && e.code) || "";
        if (code === "auth/popup-closed-by-user" || code === "auth/cancelled-popup-request") {
          showError("The sign-in window was closed before you finished. Please try again.");
        } else if (code === "auth/popup-blocked") {
          showError("Your browser blocked the sign-in window. Please allow pop-ups for this page and try again.");
        } else if (code === "auth/account-exists-with-different-credential") {
          showError("This email already has an account with another sign-in method. Please use that one.");
        } else {
          showError("Sign-in did not complete (" + (code || "unknown error") + "). Please try again.");
        }
      });
  }

  (cfg.providers || []).forEach(function (p) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "btn";
    b.textContent = p.label;
    b.addEventListener("click", function () { signIn(p.id); });
    buttons.push(b);
    root.appendChild(b);
  });
})();
