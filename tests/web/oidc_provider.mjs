// A real OpenID Connect provider for the tests: the npm `oidc-provider` package (certified
// OpenID Provider library), on loopback, with one client (the web workspace) and accounts whose
// claims carry the agency and role. Its development login form accepts any account id; the
// tests sign in as one of ACCOUNTS below.
//
//   node oidc_provider.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI
import Provider from 'oidc-provider'

const [port, clientId, clientSecret, redirectUri] = process.argv.slice(2)
const ACCOUNTS = {
  'idp-police-lead': { email: 'oidc.police@police.example', agency: 'police/avon-somerset', role: 'safeguarding-lead' },
  'idp-dsl': { email: 'oidc.dsl@partnership.example', role: 'dsl' },
  'idp-nobody': { email: 'visitor@elsewhere.example', role: 'receptionist' },
}

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  claims: { openid: ['sub'], email: ['email'], sgledger: ['agency', 'role'] },
  scopes: ['openid', 'email', 'sgledger'],
  async findAccount (ctx, id) {
    const account = ACCOUNTS[id]
    if (!account) return undefined
    return { accountId: id, async claims () { return { sub: id, ...account } } }
  },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  cookies: { keys: ['sgledger-tests-only'] },
})
provider.listen(Number(port), '127.0.0.1', () => console.log(`oidc-provider listening on ${port}`))
