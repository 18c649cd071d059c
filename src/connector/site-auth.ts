import { createHmac, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http } from '../hub/rules.js';
import { simple } from './site-proxy.js';

/**
 * Site access control: `basicHttpAuth` (salted hash of "user:password", checked against the Authorization header)
 * and `password` (salted hash; a login page that sets a signed, expiring cookie). Hashes are
 * `scrypt$<salt base64>$<hash base64>`, made by `hashSecret` (CLI `--basic-auth`, `--password`).
 */
const LOGIN_PATH = '/.porthole/login';
const COOKIE = 'porthole_site';
const COOKIE_LIFETIME = 7 * 24 * 3600;
const MAX_FORM = 4096;

export function hashSecret(text: string): string {
  const salt = randomBytes(16);
  return `scrypt$${salt.toString('base64')}$${scryptSync(text, salt, 32).toString('base64')}`;
}

export function verifySecret(text: string, stored: string): boolean {
  const [scheme, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !hash) return false;
  const want = Buffer.from(hash, 'base64');
  const got = scryptSync(text, Buffer.from(salt, 'base64'), want.length || 32);
  return got.length === want.length && timingSafeEqual(got, want);
}

/** Per-site cookie signatures: keyed by the tunnel secret and the password hash, so a new password logs all out. */
function sign(secret: string, site: Http, expires: number): string {
  return createHmac('sha256', secret)
    .update(`${site.domain.toLowerCase()}\n${site.password ?? ''}\n${expires}`)
    .digest('base64url');
}

function cookieValid(req: IncomingMessage, site: Http, secret: string): boolean {
  const cookies = String(req.headers.cookie ?? '').split(/;\s*/);
  for (const c of cookies) {
    if (!c.startsWith(`${COOKIE}=`)) continue;
    const [expires, mac] = c.slice(COOKIE.length + 1).split('.');
    const when = Number(expires);
    if (!Number.isInteger(when) || when < Date.now() / 1000 || !mac) continue;
    const want = Buffer.from(sign(secret, site, when));
    const got = Buffer.from(mac);
    if (want.length === got.length && timingSafeEqual(want, got)) return true;
  }
  return false;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginPage(res: ServerResponse, site: Http, back: string, failed: boolean): void {
  const title = escapeHtml(site.authPageOpts?.title ?? site.domain);
  const logo = site.authPageOpts?.logoURL ? `<img src="${escapeHtml(site.authPageOpts.logoURL)}" alt="">` : '';
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body>${logo}<h1>${title}</h1>${failed ? '<p role="alert">Wrong password.</p>' : ''}<form method="post" action="${LOGIN_PATH}"><input type="hidden" name="back" value="${escapeHtml(back)}"><label>Password <input type="password" name="password" autofocus></label> <button>Enter</button></form></body></html>\n`;
  res.writeHead(401, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(html),
    'cache-control': 'no-store',
  });
  res.end(html);
}

/** Answers the request when access is denied (or it is the login form); false when it may go on. */
export function guard(req: IncomingMessage, res: ServerResponse, site: Http, secret: string, https: boolean): boolean {
  if (site.basicHttpAuth) {
    const m = /^Basic\s+(\S+)$/i.exec(String(req.headers.authorization ?? ''));
    const given = m ? Buffer.from(m[1] as string, 'base64').toString('utf8') : undefined;
    if (given === undefined || !verifySecret(given, site.basicHttpAuth)) {
      simple(res, 401, 'Authentication required.', {
        'www-authenticate': `Basic realm="${site.domain}", charset="UTF-8"`,
      });
      return true;
    }
  }
  if (!site.password) return false;
  if (req.url?.split('?')[0] === LOGIN_PATH && req.method === 'POST') {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      body += c;
      if (body.length > MAX_FORM) req.destroy();
    });
    req.on('end', () => {
      const form = new URLSearchParams(body);
      const raw = form.get('back') ?? '/';
      // Only a local path: the form must not become an open redirect.
      const back = raw.startsWith('/') && !raw.startsWith('//') ? raw : '/';
      if (!verifySecret(form.get('password') ?? '', site.password as string)) {
        loginPage(res, site, back, true);
        return;
      }
      const expires = Math.floor(Date.now() / 1000) + COOKIE_LIFETIME;
      const cookie = `${COOKIE}=${expires}.${sign(secret, site, expires)}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${COOKIE_LIFETIME}${https ? '; Secure' : ''}`;
      simple(res, 303, 'Logged in.', { location: back, 'set-cookie': cookie });
    });
    return true;
  }
  if (cookieValid(req, site, secret)) return false;
  loginPage(res, site, req.url ?? '/', false);
  return true;
}
