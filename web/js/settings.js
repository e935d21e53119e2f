// Viewer settings from the page URL's query string. Changes made in the UI are written back
// with history.replaceState, so the address bar always holds a link to the current setup.
//
//   token        passed to the gateway (selects the target there)        default: none
//   view_only    1: send no input (the gateway may also force this)      default: 0
//   scale        fit: whole desktop in the window; native: 1:1, scroll   default: fit
//   resize       1: ask the remote desktop to match the window size      default: 1
//   autoconnect  0: wait for the Connect button                          default: 1
//   reconnect    0: no automatic reconnect after a drop                  default: 1
//   stats        1: show the statistics overlay                          default: 0

const DEFAULTS = { token: '', view_only: false, scale: 'fit', resize: true,
  autoconnect: true, reconnect: true, stats: false };

function parseBool(v, dflt) {
  if (v === null) return dflt;
  return !/^(0|false|no|off)$/i.test(v);
}

export function load(search = location.search) {
  const q = new URLSearchParams(search);
  const s = {};
  for (const [k, d] of Object.entries(DEFAULTS)) {
    const v = q.get(k);
    if (typeof d === 'boolean') s[k] = parseBool(v, d);
    else s[k] = v === null ? d : v;
  }
  if (s.scale !== 'fit' && s.scale !== 'native') s.scale = 'fit';
  return s;
}

/** Writes one changed setting back into the address bar (defaults are left out). */
export function store(settings, name) {
  const url = new URL(location.href);
  const v = settings[name];
  if (v === DEFAULTS[name]) url.searchParams.delete(name);
  else url.searchParams.set(name, typeof v === 'boolean' ? (v ? '1' : '0') : v);
  history.replaceState(null, '', url);
}

/** The WebSocket URL: `ws` resolved next to the page (so a path prefix of a proxy works). */
export function socketUrl(settings, base = location.href) {
  const url = new URL('ws', base);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.search = '';
  if (settings.token) url.searchParams.set('token', settings.token);
  if (settings.view_only) url.searchParams.set('view_only', '1');
  return url.href;
}
