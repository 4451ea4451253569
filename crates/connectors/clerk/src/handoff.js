// Keybridge's hand-off glue for Clerk. Loaded by the hand-off page (no inline script); reads
// #keybridge-handoff's data-action, data-req, data-csrf and data-config ({publishableKey,
// clerkJsUrl}), lets Clerk's SDK sign the person in, and posts the session token to Keybridge
// in a form with req, csrf and token. The token is Clerk's 60-second session JWT; Keybridge
// verifies it against the instance's JWKS and never stores it.
//
// Clerk's browser bundle starts itself from the publishable key it finds on its <script> tag or
// in window.__clerk_publishable_key. The page's own tag for it runs before this file, without the
// key, so Clerk cannot start there; this file sets the key and loads the bundle again (from the
// browser's cache), which then starts.
(function () {
  'use strict';
  var root = document.getElementById('keybridge-handoff');
  var errorBox = document.getElementById('keybridge-error');
  if (!root) return;

  function fail(message) {
    if (errorBox) {
      errorBox.textContent = message;
      errorBox.hidden = false;
    }
  }

  var config;
  try {
    config = JSON.parse(root.getAttribute('data-config') || '{}');
  } catch (e) {
    fail('This sign-in page is misconfigured.');
    return;
  }
  if (!config.publishableKey || !config.clerkJsUrl) {
    fail('This sign-in page is misconfigured.');
    return;
  }

  var sent = false;
  function submit(token) {
    var form = document.createElement('form');
    form.method = 'post';
    form.action = root.getAttribute('data-action');
    [['req', root.getAttribute('data-req')], ['csrf', root.getAttribute('data-csrf')], ['token', token]].forEach(
      function (field) {
        var input = document.createElement('input');
        input.type = 'hidden';
        input.name = field[0];
        input.value = field[1] || '';
        form.appendChild(input);
      }
    );
    document.body.appendChild(form);
    form.submit();
  }

  function loadClerk() {
    return new Promise(function (resolve, reject) {
      if (window.Clerk && typeof window.Clerk.load === 'function') {
        resolve(window.Clerk);
        return;
      }
      window.__clerk_publishable_key = config.publishableKey;
      var script = document.createElement('script');
      script.setAttribute('data-clerk-publishable-key', config.publishableKey);
      script.crossOrigin = 'anonymous';
      script.async = true;
      script.src = config.clerkJsUrl;
      script.onload = function () {
        if (window.Clerk) resolve(window.Clerk);
        else reject(new Error('Clerk did not start'));
      };
      script.onerror = function () {
        reject(new Error('Clerk could not be loaded'));
      };
      document.head.appendChild(script);
    });
  }

  function handOff(clerk) {
    // Only a complete session: a pending one (an organization still to choose) is refused anyway.
    if (sent || !clerk.session || clerk.session.status !== 'active') return;
    sent = true;
    clerk.session
      .getToken({ skipCache: true })
      .then(function (token) {
        if (!token) throw new Error('no session token');
        submit(token);
      })
      .catch(function () {
        sent = false;
        fail('Clerk did not hand over a session. Please try again.');
      });
  }

  loadClerk()
    .then(function (clerk) {
      return clerk.load().then(function () {
        clerk.addListener(function () {
          handOff(clerk);
        });
        if (clerk.session) {
          handOff(clerk);
          return;
        }
        var mount = document.createElement('div');
        root.appendChild(mount);
        var here = window.location.href;
        clerk.mountSignIn(mount, { forceRedirectUrl: here, signUpForceRedirectUrl: here });
      });
    })
    .catch(function (e) {
      fail('Sign-in could not start: ' + (e && e.message ? e.message : 'unknown error'));
    });
})();
