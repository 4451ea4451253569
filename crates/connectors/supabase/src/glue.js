// Keybridge's Supabase hand-off glue. supabase-js (loaded before this file) signs the person in on
// this page; the session is then posted to Keybridge with the request id and the CSRF token, bound
// to this browser. No inline script, no inline style: the page's CSP forbids both.
(function () {
  "use strict";
  var root = document.getElementById("keybridge-handoff");
  var errorBox = document.getElementById("keybridge-error");
  if (!root) return;
  var cfg = {};
  try {
    cfg = JSON.parse(root.getAttribute("data-config") || "{}");
  } catch (e) {
    cfg = {};
  }
  var STORAGE_KEY = "keybridge-supabase-handoff";

  function showError(message) {
    if (!errorBox) return;
    errorBox.textContent = message;
    errorBox.hidden = false;
  }

  if (!window.supabase || typeof window.supabase.createClient !== "function") {
    showError("The Supabase sign-in library could not be loaded. Please try again later.");
    return;
  }

  // The session belongs to Keybridge alone: it is kept only until it is handed over, and this
  // page never refreshes it (Supabase rotates refresh tokens; two holders would collide).
  var client = window.supabase.createClient(cfg.url, cfg.anonKey, {
    auth: {
      flowType: "pkce",
      persistSession: true,
      autoRefreshToken: false,
      detectSessionInUrl: true,
      storageKey: STORAGE_KEY,
    },
  });

  function forget() {
    try {
      for (var i = window.localStorage.length - 1; i >= 0; i--) {
        var k = window.localStorage.key(i);
        if (k && k.indexOf(STORAGE_KEY) === 0) window.localStorage.removeItem(k);
      }
    } catch (e) {
      /* storage unavailable: nothing kept */
    }
  }

  function handOff(session) {
    var form = document.createElement("form");
    form.method = "post";
    form.action = root.getAttribute("data-action");
    var fields = {
      req: root.getAttribute("data-req"),
      csrf: root.getAttribute("data-csrf"),
      token: JSON.stringify({ access_token: session.access_token, refresh_token: session.refresh_token }),
    };
    Object.keys(fields).forEach(function (name) {
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = fields[name] || "";
      form.appendChild(input);
    });
    forget();
    document.body.appendChild(form);
    form.submit();
  }

  // Where OAuth providers and email links come back to: this page, for this request.
  function here() {
    return window.location.origin + window.location.pathname + "?req=" + encodeURIComponent(root.getAttribute("data-req") || "");
  }

  function field(id, label, type, autocomplete) {
    var l = document.createElement("label");
    l.htmlFor = id;
    l.textContent = label;
    var input = document.createElement("input");
    input.id = id;
    input.type = type;
    input.required = true;
    input.autocomplete = autocomplete;
    root.appendChild(l);
    root.appendChild(input);
    return input;
  }

  function button(label, onClick) {
    var b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.addEventListener("click", function () {
      if (errorBox) errorBox.hidden = true;
      onClick();
    });
    root.appendChild(b);
    return b;
  }

  function render() {
    (cfg.providers || []).forEach(function (p) {
      button("Continue with " + p.label, function () {
        client.auth.signInWithOAuth({ provider: p.id, options: { redirectTo: here() } }).then(function (r) {
          if (r.error) showError(r.error.message);
        });
      });
    });
    var email = field("keybridge-email", "Email", "email", "username");
    var password = field("keybridge-password", "Password", "password", "current-password");
    button("Sign in", function () {
      client.auth.signInWithPassword({ email: email.value, password: password.value }).then(function (r) {
        if (r.error || !r.data || !r.data.session) {
          showError(r.error ? r.error.message : "Sign-in failed.");
          return;
        }
        handOff(r.data.session);
      });
    });
    button("Email me a sign-in link", function () {
      if (!email.value) {
        showError("Enter your email first.");
        return;
      }
      client.auth
        .signInWithOtp({ email: email.value, options: { emailRedirectTo: here(), shouldCreateUser: false } })
        .then(function (r) {
          showError(r.error ? r.error.message : "Check your email for a sign-in link, and open it in this browser.");
        });
    });
  }

  // Back from a provider or an email link (`?code=`): supabase-js exchanges it on start.
  client.auth.getSession().then(function (r) {
    var session = r && r.data && r.data.session;
    if (session) {
      handOff(session);
      return;
    }
    var params = new URLSearchParams(window.location.search);
    if (params.get("error_description")) showError(params.get("error_description"));
    render();
  });
})();
