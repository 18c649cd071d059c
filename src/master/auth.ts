import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** The 401 message for a request's X-API-Key header, or undefined when it matches `key` (compared in constant time). */
export function checkApiKey(header: string | string[] | undefined, key: string): string | undefined {
  const given = Array.isArray(header) ? header[0] : header;
  if (given === undefined || given === '') return 'Unauthorized: API key required';
  return timingSafeEqual(digest(given), digest(key)) ? undefined : 'Unauthorized: Invalid API key';
}
