/** Hash routes: `#/` list, `#/new`, `#/i/ID`, `#/i/ID/edit`, `#/master`. Hash routing needs nothing from the server. */
import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { view: 'list' }
  | { view: 'new' }
  | { view: 'detail'; id: string }
  | { view: 'edit'; id: string }
  | { view: 'master' };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '');
  const m = /^\/i\/([^/]+)(\/edit)?$/.exec(path);
  if (m) {
    const id = decodeURIComponent(m[1] as string);
    return m[2] ? { view: 'edit', id } : { view: 'detail', id };
  }
  if (path === '/new') return { view: 'new' };
  if (path === '/master') return { view: 'master' };
  return { view: 'list' };
}

export function href(route: Route): string {
  switch (route.view) {
    case 'list':
      return '#/';
    case 'new':
      return '#/new';
    case 'master':
      return '#/master';
    case 'detail':
      return `#/i/${encodeURIComponent(route.id)}`;
    case 'edit':
      return `#/i/${encodeURIComponent(route.id)}/edit`;
  }
}

export function navigate(route: Route): void {
  location.hash = href(route);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}
