import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, sep } from 'node:path';
import { simple } from './site-proxy.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.xml': 'application/xml',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.wasm': 'application/wasm',
  '.pdf': 'application/pdf',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
  '.mp3': 'audio/mpeg',
  '.zip': 'application/zip',
};

export function contentType(path: string): string {
  return TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream';
}

/** The file under `root` that `urlPath` names, or undefined when it leaves the root (traversal or a symlink). */
async function resolveInside(root: string, urlPath: string): Promise<string | undefined> {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return undefined;
  }
  // Backslashes and NULs have no business in a URL path; `..` segments are refused, not normalized away.
  if (decoded.includes('\0') || decoded.includes('\\') || decoded.split('/').includes('..')) return undefined;
  const realRoot = await realpath(root);
  let real: string;
  try {
    real = await realpath(join(realRoot, decoded));
  } catch {
    return join(realRoot, decoded); // missing: a 404 below, still inside the root
  }
  return real === realRoot || real.startsWith(realRoot + sep) ? real : undefined;
}

/**
 * Serves `webRoot`: GET/HEAD, index.html for directories, content types by extension, ETag and Last-Modified with
 * conditional requests (304), a single byte Range (206/416). Paths that leave the root — `..`, encoded `%2e%2e`,
 * backslashes, or a symlink pointing outside — are refused (403).
 */
export async function serveStatic(req: IncomingMessage, res: ServerResponse, root: string): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    simple(res, 405, 'Method not allowed.', { allow: 'GET, HEAD' });
    return;
  }
  const urlPath = (req.url ?? '/').split('?')[0] as string;
  let file = await resolveInside(root, urlPath).catch(() => undefined);
  if (file === undefined) {
    simple(res, 403, 'Forbidden.');
    return;
  }
  let info = await stat(file).catch(() => undefined);
  if (info?.isDirectory()) {
    if (!urlPath.endsWith('/')) {
      simple(res, 301, 'Moved.', { location: `${urlPath}/` });
      return;
    }
    const index = await resolveInside(root, `${urlPath}index.html`).catch(() => undefined);
    if (index === undefined) {
      simple(res, 403, 'Forbidden.');
      return;
    }
    file = index;
    info = await stat(file).catch(() => undefined);
  }
  if (!info?.isFile()) {
    simple(res, 404, 'Not found.');
    return;
  }
  const etag = `W/"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`;
  const lastModified = info.mtime.toUTCString();
  const headers: Record<string, string | number> = {
    'content-type': contentType(file),
    etag,
    'last-modified': lastModified,
    'accept-ranges': 'bytes',
  };
  const inm = req.headers['if-none-match'];
  const ims = req.headers['if-modified-since'];
  if (
    inm?.split(',').some((t) => t.trim() === etag || t.trim() === '*') ||
    (inm === undefined && ims !== undefined && Date.parse(ims) >= Math.floor(info.mtimeMs / 1000) * 1000)
  ) {
    res.writeHead(304, { etag, 'last-modified': lastModified });
    res.end();
    return;
  }
  let start = 0;
  let end = info.size - 1;
  let status = 200;
  const range = req.headers.range;
  if (range !== undefined && (req.headers['if-range'] === undefined || req.headers['if-range'] === etag)) {
    const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
    if (m && (m[1] !== '' || m[2] !== '')) {
      if (m[1] === '') {
        start = Math.max(0, info.size - Number(m[2]));
      } else {
        start = Number(m[1]);
        if (m[2] !== '') end = Math.min(end, Number(m[2]));
      }
      if (start > end || start >= info.size) {
        res.writeHead(416, { 'content-range': `bytes */${info.size}` });
        res.end();
        return;
      }
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${info.size}`;
    }
  }
  headers['content-length'] = info.size === 0 ? 0 : end - start + 1;
  res.writeHead(status, headers);
  if (req.method === 'HEAD' || info.size === 0) {
    res.end();
    return;
  }
  const stream = createReadStream(file, { start, end });
  stream.on('error', () => res.destroy());
  stream.pipe(res);
}
