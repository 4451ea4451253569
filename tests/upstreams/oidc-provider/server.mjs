// A real OpenID provider (panva/node-oidc-provider) for Keybridge's integration tests.
//
// Environment: PORT, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI (Keybridge's /callback/{id}).
// Prints "oidc-provider ready on <issuer>" once it listens.
//
// Logins need no form: the interaction step signs in the account named by the authorization
// request's `login_hint` (default "alice") and consents to what was asked. The hint "deny" ends
// the login with error=access_denied. Any account id exists, with these claims:
//   sub = id, email = id@example.com (verified), name = "User id", groups = ["staff", id].
// Test controls: POST /test/disable/{id} makes the account disappear (refresh then fails with
// invalid_grant), POST /test/enable/{id} brings it back.
import { generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const disabled = new Set();

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: `test-${randomBytes(4).toString('hex')}`, alg: 'RS256', use: 'sig' };

function account(id) {
  if (disabled.has(id)) return undefined;
  return {
    accountId: id,
    async claims() {
      return {
        sub: id,
        email: `${id}@example.com`,
        email_verified: true,
        name: `User ${id}`,
        groups: ['staff', id],
      };
    },
  };
}

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.CLIENT_ID,
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: [process.env.REDIRECT_URI],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [jwk] },
  cookies: { keys: [randomBytes(16).toString('hex')] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  features: { devInteractions: { enabled: false } },
  pkce: { required: () => true },
  findAccount: async (_ctx, id) => account(id),
  interactions: { url: async (_ctx, interaction) => `/interaction/${interaction.uid}` },
  rotateRefreshToken: true,
});

provider.use(async (ctx, next) => {
  const control = ctx.path.match(/^\/test\/(disable|enable)\/([^/]+)$/);
  if (control && ctx.method === 'POST') {
    const [, what, id] = control;
    if (what === 'disable') disabled.add(id); else disabled.delete(id);
    ctx.status = 204;
    return;
  }
  const step = ctx.path.match(/^\/interaction\/([^/]+)$/);
  if (!step || ctx.method !== 'GET') return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { prompt, params } = details;
  let result;
  if (prompt.name === 'login') {
    const id = params.login_hint || 'alice';
    result = id === 'deny'
      ? { error: 'access_denied', error_description: 'The person declined to sign in.' }
      : { login: { accountId: id } };
  } else if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    result = { consent: { grantId: await grant.save() } };
  } else {
    result = { error: 'invalid_request', error_description: `unexpected prompt ${prompt.name}` };
  }
  await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider ready on ${issuer}`);
});
