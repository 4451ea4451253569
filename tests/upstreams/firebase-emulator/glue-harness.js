// Runs Keybridge's Firebase hand-off glue script (crates/connectors/firebase/src/handoff.js, as
// Keybridge serves it) against a minimal DOM and a stand-in for the Firebase JS SDK's compat API,
// clicks one provider button, and prints what the script did as JSON: the SDK calls it made and
// the form it submitted. The stand-in's popup "returns" the ID and refresh tokens it is given (in
// the tests, real ones from the Firebase Auth Emulator), so the printed form can be posted to
// Keybridge to finish the sign-in.
//
//   node glue-harness.js GLUE_FILE INPUT_JSON
//   INPUT_JSON: {"attrs": {data-* of #keybridge-handoff}, "clickIndex": 0,
//                "idToken": "...", "refreshToken": "...", "fail": "auth/popup-blocked"?}
"use strict";

const fs = require("node:fs");
const vm = require("node:vm");

const glue = fs.readFileSync(process.argv[2], "utf8");
const input = JSON.parse(process.argv[3]);
const calls = [];
let submitted = null;

function element(tag) {
  const el = {
    tag,
    children: [],
    listeners: {},
    attrs: {},
    hidden: false,
    textContent: "",
    appendChild(c) {
      this.children.push(c);
      return c;
    },
    addEventListener(type, fn) {
      this.listeners[type] = fn;
    },
    getAttribute(name) {
      return Object.prototype.hasOwnProperty.call(this.attrs, name) ? this.attrs[name] : null;
    },
    submit() {
      const fields = {};
      for (const c of this.children) fields[c.name] = c.value;
      submitted = { method: this.method, action: this.action, fields };
    },
  };
  return el;
}

const root = element("div");
root.attrs = input.attrs;
const errorBox = element("p");
errorBox.hidden = true;
const body = element("body");
const document = {
  body,
  getElementById(id) {
    return id === "keybridge-handoff" ? root : id === "keybridge-error" ? errorBox : null;
  },
  createElement: element,
};

class Provider {
  constructor(id) {
    this.providerId = id;
  }
}
const auth = {
  useEmulator(url, opts) {
    calls.push(["useEmulator", url, opts]);
  },
  setPersistence(p) {
    calls.push(["setPersistence", p]);
    return Promise.resolve();
  },
  signInWithPopup(provider) {
    calls.push(["signInWithPopup", provider.providerId]);
    if (input.fail) return Promise.reject({ code: input.fail });
    return Promise.resolve({
      user: { refreshToken: input.refreshToken, getIdToken: () => Promise.resolve(input.idToken) },
    });
  },
  signOut() {
    calls.push(["signOut"]);
    return Promise.resolve();
  },
};
const firebase = {
  initializeApp(config, name) {
    calls.push(["initializeApp", config, name]);
    return { auth: () => auth };
  },
  auth: Object.assign(() => auth, {
    Auth: { Persistence: { NONE: "none", LOCAL: "local", SESSION: "session" } },
    GoogleAuthProvider: class extends Provider { constructor() { super("google.com"); } },
    GithubAuthProvider: class extends Provider { constructor() { super("github.com"); } },
    FacebookAuthProvider: class extends Provider { constructor() { super("facebook.com"); } },
    TwitterAuthProvider: class extends Provider { constructor() { super("twitter.com"); } },
    OAuthProvider: Provider,
    SAMLAuthProvider: Provider,
  }),
};

vm.runInNewContext(glue, { document, firebase, JSON, Object });
const buttons = root.children.filter((c) => c.tag === "button");
const button = buttons[input.clickIndex || 0];
if (!button) {
  console.log(JSON.stringify({ error: "no button", labels: buttons.map((b) => b.textContent), calls }));
  process.exit(1);
}
button.listeners.click();
setTimeout(() => {
  console.log(
    JSON.stringify({
      labels: buttons.map((b) => b.textContent),
      calls,
      submitted,
      error: errorBox.hidden ? null : errorBox.textContent,
    }),
  );
}, 50);
