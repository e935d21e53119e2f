// KeyboardEvent → X11 keysym (X11 keysymdef.h; Unicode keysyms are 0x01000000 + code point,
// as in X11 "KEYSYM Encoding" appendix). Pure functions, no DOM: unit-tested in Node.

export const XK = {
  BackSpace: 0xff08, Tab: 0xff09, Return: 0xff0d, Escape: 0xff1b, Delete: 0xffff,
  Home: 0xff50, Left: 0xff51, Up: 0xff52, Right: 0xff53, Down: 0xff54,
  Page_Up: 0xff55, Page_Down: 0xff56, End: 0xff57, Insert: 0xff63,
  Shift_L: 0xffe1, Shift_R: 0xffe2, Control_L: 0xffe3, Control_R: 0xffe4,
  Caps_Lock: 0xffe5, Num_Lock: 0xff7f, Meta_L: 0xffe7, Meta_R: 0xffe8, Alt_L: 0xffe9, Alt_R: 0xffea,
  Super_L: 0xffeb, Super_R: 0xffec, ISO_Level3_Shift: 0xfe03, F1: 0xffbe,
};

// KeyboardEvent.key names (UI Events KeyboardEvent key Values) → keysym.
const NAMED = {
  Backspace: XK.BackSpace, Tab: XK.Tab, Enter: XK.Return, Escape: XK.Escape,
  Delete: XK.Delete, Home: XK.Home, End: XK.End, PageUp: XK.Page_Up, PageDown: XK.Page_Down,
  ArrowLeft: XK.Left, ArrowUp: XK.Up, ArrowRight: XK.Right, ArrowDown: XK.Down,
  Insert: XK.Insert, Clear: 0xff0b, Pause: 0xff13, ScrollLock: 0xff14, PrintScreen: 0xff61,
  ContextMenu: 0xff67, Help: 0xff6a, Cancel: 0xff69, Find: 0xff68, Select: 0xff60,
  Execute: 0xff62, Undo: 0xff65, Redo: 0xff66, NumLock: 0xff7f, CapsLock: XK.Caps_Lock,
  AltGraph: XK.ISO_Level3_Shift, Compose: 0xff20, ModeChange: 0xff7e,
  Convert: 0xff23, NonConvert: 0xff22, KanaMode: 0xff2d, HiraganaKatakana: 0xff27,
  Hiragana: 0xff25, Katakana: 0xff26, ZenkakuHankaku: 0xff2a, Eisu: 0xff2f,
  HangulMode: 0xff31, HanjaMode: 0xff34,
  AudioVolumeMute: 0x1008ff12, AudioVolumeDown: 0x1008ff11, AudioVolumeUp: 0x1008ff13,
  MediaPlayPause: 0x1008ff14, MediaStop: 0x1008ff15, MediaTrackPrevious: 0x1008ff16,
  MediaTrackNext: 0x1008ff17, BrowserBack: 0x1008ff26, BrowserForward: 0x1008ff27,
};

// Modifiers are told apart by KeyboardEvent.code (left/right).
const BY_CODE = {
  ShiftLeft: XK.Shift_L, ShiftRight: XK.Shift_R,
  ControlLeft: XK.Control_L, ControlRight: XK.Control_R,
  AltLeft: XK.Alt_L, AltRight: XK.Alt_R,
  MetaLeft: XK.Super_L, MetaRight: XK.Super_R, OSLeft: XK.Super_L, OSRight: XK.Super_R,
};
const MODIFIER_KEYS = { Shift: 1, Control: 1, Alt: 1, Meta: 1, OS: 1, AltGraph: 1, Super: 1, Hyper: 1 };

// Numpad keys (location 3) by code; digits depend on NumLock, so by key where it matters.
const NUMPAD_CODE = {
  NumpadAdd: 0xffab, NumpadSubtract: 0xffad, NumpadMultiply: 0xffaa, NumpadDivide: 0xffaf,
  NumpadEnter: 0xff8d, NumpadEqual: 0xffbd, NumpadComma: 0xffac,
};
const NUMPAD_NAV = {
  Home: 0xff95, ArrowLeft: 0xff96, ArrowUp: 0xff97, ArrowRight: 0xff98, ArrowDown: 0xff99,
  PageUp: 0xff9a, PageDown: 0xff9b, End: 0xff9c, Clear: 0xff9d, Insert: 0xff9e, Delete: 0xff9f,
};

const has = (o, k) => Object.prototype.hasOwnProperty.call(o, k);

/** Keysym for one Unicode code point (control characters map to their named keys). */
export function keysymForCodePoint(cp) {
  if (cp === 0x0a || cp === 0x0d) return XK.Return;
  if (cp === 0x09) return XK.Tab;
  if (cp === 0x08) return XK.BackSpace;
  if (cp === 0x1b) return XK.Escape;
  if (cp === 0x7f) return XK.Delete;
  if ((cp >= 0x20 && cp <= 0x7e) || (cp >= 0xa0 && cp <= 0xff)) return cp; // Latin-1 is direct
  if (cp < 0x20 || (cp > 0x7e && cp < 0xa0)) return null; // other C0/C1 controls
  return 0x01000000 + cp;
}

/** Keysyms for a string typed as text (composition, IME, paste-as-keys). */
export function keysymsForText(text) {
  const out = [];
  for (const ch of text) {
    const ks = keysymForCodePoint(ch.codePointAt(0));
    if (ks !== null) out.push(ks);
  }
  return out;
}

/** True when the event is a modifier key by itself. */
export function isModifier(e) {
  return has(MODIFIER_KEYS, e.key) || has(BY_CODE, e.code);
}

/**
 * The keysym to send for a keydown, or null when this event carries no key for the remote
 * (dead key, IME processing, unidentified: the text then arrives through input events).
 * `e` needs only {key, code, location}.
 */
export function keysymForEvent(e) {
  const { key, code } = e;
  if (key === 'Dead' || key === 'Process' || key === 'Unidentified' || key === undefined) return null;
  if (key === 'AltGraph') return XK.ISO_Level3_Shift;
  if (has(BY_CODE, code) && (has(MODIFIER_KEYS, key) || key === '')) return BY_CODE[code];
  if (key === 'Shift') return e.location === 2 ? XK.Shift_R : XK.Shift_L;
  if (key === 'Control') return e.location === 2 ? XK.Control_R : XK.Control_L;
  if (key === 'Alt') return e.location === 2 ? XK.Alt_R : XK.Alt_L;
  if (key === 'Meta' || key === 'OS' || key === 'Super') return e.location === 2 ? XK.Super_R : XK.Super_L;
  if (e.location === 3 || (code && code.startsWith('Numpad'))) {
    if (has(NUMPAD_CODE, code)) return NUMPAD_CODE[code];
    if (has(NUMPAD_NAV, key)) return NUMPAD_NAV[key];
    if (key.length === 1 && key >= '0' && key <= '9') return 0xffb0 + (key.charCodeAt(0) - 48);
    if (code === 'NumpadDecimal') return 0xffae;
  }
  const f = /^F([1-9]|1[0-9]|2[0-4])$/.exec(key);
  if (f) return XK.F1 + Number(f[1]) - 1;
  if (has(NAMED, key)) return NAMED[key];
  const cps = [...key];
  if (cps.length === 1) return keysymForCodePoint(key.codePointAt(0));
  return null; // multi-character key values (rare): the input event path sends them as text
}
