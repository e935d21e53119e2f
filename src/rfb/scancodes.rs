//! The browser's `KeyboardEvent.code` → XT (PC AT set 1) make scancode, for
//! QEMU extended key events (rfbproto "QEMU Extended Key Event Message").
//!
//! `KeyboardEvent.code` names the physical key (UI Events KeyboardEvent code
//! values: `KeyA` is the key labelled A on a US layout, wherever the user's
//! layout puts A), which is exactly what a scancode says. The VNC server then
//! applies *its* keyboard layout, so a German or French desktop gets the
//! right characters, AltGr combinations and dead keys whatever the browser's
//! layout is.
//!
//! Table values are XT scancodes: one byte `0xNN`, or `0xE0NN` for the
//! two-byte `E0`-prefixed keys. [`rfb_keycode`] turns them into the wire's
//! U32 keycode: single bytes as they are, `E0 NN` as `0x80 | NN`; Pause
//! (`E1 1D 45`) is sent as 0xC6 and PrintScreen as 0x54, as the spec asks.

/// `(code, XT scancode)`, sorted by code for binary search.
const TABLE: &[(&str, u16)] = &[
    ("AltLeft", 0x0038),
    ("AltRight", 0xe038),
    ("ArrowDown", 0xe050),
    ("ArrowLeft", 0xe04b),
    ("ArrowRight", 0xe04d),
    ("ArrowUp", 0xe048),
    ("AudioVolumeDown", 0xe02e),
    ("AudioVolumeMute", 0xe020),
    ("AudioVolumeUp", 0xe030),
    ("Backquote", 0x0029),
    ("Backslash", 0x002b),
    ("Backspace", 0x000e),
    ("BracketLeft", 0x001a),
    ("BracketRight", 0x001b),
    ("BrowserBack", 0xe06a),
    ("BrowserFavorites", 0xe066),
    ("BrowserForward", 0xe069),
    ("BrowserHome", 0xe032),
    ("BrowserRefresh", 0xe067),
    ("BrowserSearch", 0xe065),
    ("BrowserStop", 0xe068),
    ("CapsLock", 0x003a),
    ("Comma", 0x0033),
    ("ContextMenu", 0xe05d),
    ("ControlLeft", 0x001d),
    ("ControlRight", 0xe01d),
    ("Convert", 0x0079),
    ("Delete", 0xe053),
    ("Digit0", 0x000b),
    ("Digit1", 0x0002),
    ("Digit2", 0x0003),
    ("Digit3", 0x0004),
    ("Digit4", 0x0005),
    ("Digit5", 0x0006),
    ("Digit6", 0x0007),
    ("Digit7", 0x0008),
    ("Digit8", 0x0009),
    ("Digit9", 0x000a),
    ("End", 0xe04f),
    ("Enter", 0x001c),
    ("Equal", 0x000d),
    ("Escape", 0x0001),
    ("F1", 0x003b),
    ("F10", 0x0044),
    ("F11", 0x0057),
    ("F12", 0x0058),
    ("F13", 0x005d),
    ("F14", 0x005e),
    ("F15", 0x005f),
    ("F16", 0x0055),
    ("F17", 0xe003),
    ("F2", 0x003c),
    ("F3", 0x003d),
    ("F4", 0x003e),
    ("F5", 0x003f),
    ("F6", 0x0040),
    ("F7", 0x0041),
    ("F8", 0x0042),
    ("F9", 0x0043),
    ("Help", 0xe075),
    ("Home", 0xe047),
    ("Insert", 0xe052),
    ("IntlBackslash", 0x0056),
    ("IntlRo", 0x0073),
    ("IntlYen", 0x007d),
    ("KanaMode", 0x0070),
    ("KeyA", 0x001e),
    ("KeyB", 0x0030),
    ("KeyC", 0x002e),
    ("KeyD", 0x0020),
    ("KeyE", 0x0012),
    ("KeyF", 0x0021),
    ("KeyG", 0x0022),
    ("KeyH", 0x0023),
    ("KeyI", 0x0017),
    ("KeyJ", 0x0024),
    ("KeyK", 0x0025),
    ("KeyL", 0x0026),
    ("KeyM", 0x0032),
    ("KeyN", 0x0031),
    ("KeyO", 0x0018),
    ("KeyP", 0x0019),
    ("KeyQ", 0x0010),
    ("KeyR", 0x0013),
    ("KeyS", 0x001f),
    ("KeyT", 0x0014),
    ("KeyU", 0x0016),
    ("KeyV", 0x002f),
    ("KeyW", 0x0011),
    ("KeyX", 0x002d),
    ("KeyY", 0x0015),
    ("KeyZ", 0x002c),
    ("Lang1", 0x0072),
    ("Lang2", 0x0071),
    ("LaunchApp1", 0xe06b),
    ("LaunchApp2", 0xe021),
    ("LaunchMail", 0xe06c),
    ("MediaPlayPause", 0xe022),
    ("MediaSelect", 0xe06d),
    ("MediaStop", 0xe024),
    ("MediaTrackNext", 0xe019),
    ("MediaTrackPrevious", 0xe010),
    ("MetaLeft", 0xe05b),
    ("MetaRight", 0xe05c),
    ("Minus", 0x000c),
    ("NonConvert", 0x007b),
    ("NumLock", 0x0045),
    ("Numpad0", 0x0052),
    ("Numpad1", 0x004f),
    ("Numpad2", 0x0050),
    ("Numpad3", 0x0051),
    ("Numpad4", 0x004b),
    ("Numpad5", 0x004c),
    ("Numpad6", 0x004d),
    ("Numpad7", 0x0047),
    ("Numpad8", 0x0048),
    ("Numpad9", 0x0049),
    ("NumpadAdd", 0x004e),
    ("NumpadComma", 0x007e),
    ("NumpadDecimal", 0x0053),
    ("NumpadDivide", 0xe035),
    ("NumpadEnter", 0xe01c),
    ("NumpadEqual", 0x0059),
    ("NumpadMultiply", 0x0037),
    ("NumpadSubtract", 0x004a),
    ("PageDown", 0xe051),
    ("PageUp", 0xe049),
    ("Pause", 0xe046),
    ("Period", 0x0034),
    ("Power", 0xe05e),
    ("PrintScreen", 0x0054),
    ("Quote", 0x0028),
    ("ScrollLock", 0x0046),
    ("Semicolon", 0x0027),
    ("ShiftLeft", 0x002a),
    ("ShiftRight", 0x0036),
    ("Slash", 0x0035),
    ("Sleep", 0xe05f),
    ("Space", 0x0039),
    ("Tab", 0x000f),
    ("WakeUp", 0xe063),
];

/// XT scancode of the key `code` (`KeyboardEvent.code`), if known.
pub fn xt_scancode(code: &str) -> Option<u16> {
    TABLE.binary_search_by(|(c, _)| (*c).cmp(code)).ok().map(|i| TABLE[i].1)
}

/// The QEMU extended key event keycode for `code`, if known: `0xE0NN`
/// becomes `0x80 | NN`. `None` for unknown codes: the spec forbids the
/// extended message without a keycode, so send a plain KeyEvent instead.
pub fn rfb_keycode(code: &str) -> Option<u32> {
    let xt = xt_scancode(code)?;
    Some(match xt >> 8 {
        0 => xt as u32,
        _ => 0x80 | (xt & 0x7f) as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_and_unique() {
        for w in TABLE.windows(2) {
            assert!(w[0].0 < w[1].0, "{} before {}", w[0].0, w[1].0);
        }
    }

    #[test]
    fn spec_examples_and_special_keys() {
        // rfbproto's table: XT 0x1e (A) → 0x1e; E0 4D (Right) → 0xcd.
        assert_eq!(rfb_keycode("KeyA"), Some(0x1e));
        assert_eq!(rfb_keycode("ArrowRight"), Some(0xcd));
        // "Pause/Break MUST be sent as 0xc6"; "Print/SysRq SHOULD be 0x54".
        assert_eq!(rfb_keycode("Pause"), Some(0xc6));
        assert_eq!(rfb_keycode("PrintScreen"), Some(0x54));
        // Layout-relevant keys a German/French keyboard uses.
        assert_eq!(rfb_keycode("AltRight"), Some(0xb8));
        assert_eq!(rfb_keycode("IntlBackslash"), Some(0x56));
        assert_eq!(rfb_keycode("BracketLeft"), Some(0x1a));
        assert_eq!(rfb_keycode("Equal"), Some(0x0d));
        assert_eq!(rfb_keycode("NumpadEnter"), Some(0x9c));
        assert_eq!(rfb_keycode("Unidentified"), None);
        assert_eq!(rfb_keycode(""), None);
    }

    #[test]
    fn every_keycode_fits_the_wire_form() {
        for (code, xt) in TABLE {
            let k = rfb_keycode(code).unwrap();
            assert!(k < 0x100, "{code}: {k:#x}");
            assert!(*xt < 0x100 || xt >> 8 == 0xe0, "{code}: {xt:#x} is neither NN nor E0NN");
            assert!(xt & 0xff < 0x80, "{code}: make codes are below 0x80");
        }
    }
}
