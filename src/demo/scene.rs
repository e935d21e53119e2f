//! The animated test desktop: a pure function of (size, frame time,
//! per-connection overlay) → 0x00RRGGBB pixels. Deterministic, so tests and
//! every client see the same picture for the same time.
//!
//! ```text
//!  y=0      ┌───────────────────────────────────────────────┐
//!           │ bar: name ........................ counter    │ Panel (ZRLE)
//!  bar_h    ├───────────────────────────────────────────────┤
//!           │ terminal: gradient + typed text + cursor      │ Panel (ZRLE)
//!  term_end ├───────────────────────┬───────────────────────┤
//!           │ quadrant 0            │ quadrant 1            │ Flat (RRE)
//!           │        ┌──┐ bouncing box moves over all four  │
//!           ├────────└──┘───────────┼───────────────────────┤
//!           │ quadrant 2            │ quadrant 3            │ Flat (RRE)
//!  band_y   ├───────────────────────┴───────────────────────┤
//!           │ band: stripes scrolling up 60 px/s            │ Band (CopyRect + Hextile)
//!  h        └───────────────────────────────────────────────┘
//! ```
//! The pointer crosshair and click marks are drawn over everything.

/// Never produced by the scene (top byte set): marks pixels of the
/// client's copy that are unknown (after a non-incremental request).
pub const UNKNOWN: u32 = 0xff00_0000;

pub const BAR_COLOUR: u32 = 0x303030;
pub const BAR_TEXT: u32 = 0xe0e0e0;
pub const COUNTER_COLOUR: u32 = 0xffd040;
pub const TEXT_COLOUR: u32 = 0x80ff80;
pub const QUADRANT_COLOURS: [u32; 4] = [0x2040c0, 0x208040, 0x703060, 0x806020];
pub const BOX_FILL: u32 = 0xf0d020;
pub const BOX_BORDER: u32 = 0x202020;
pub const BAND_COLOURS: [u32; 6] = [0x102030, 0x304050, 0x605040, 0x204020, 0x503020, 0x404040];
/// Colour of the crosshair at the pointer when no button is pressed.
pub const POINTER_COLOUR: u32 = 0xffffff;
/// Colour of the crosshair while any button is pressed.
pub const POINTER_PRESSED_COLOUR: u32 = 0xff2020;
/// Colour of the 5×5 mark left centred on each button press.
pub const CLICK_COLOUR: u32 = 0xff00ff;

/// Scroll speed of the band and speeds of the box, pixels per second.
pub const BAND_SPEED: u64 = 60;
const BOX_SPEED_X: u64 = 150;
const BOX_SPEED_Y: u64 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Rect {
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
}

impl Rect {
    pub const fn new(x: usize, y: usize, w: usize, h: usize) -> Self {
        Rect { x, y, w, h }
    }
    pub fn is_empty(&self) -> bool {
        self.w == 0 || self.h == 0
    }
    pub fn intersect(&self, o: &Rect) -> Rect {
        let x0 = self.x.max(o.x);
        let y0 = self.y.max(o.y);
        let x1 = (self.x + self.w).min(o.x + o.w);
        let y1 = (self.y + self.h).min(o.y + o.h);
        if x1 <= x0 || y1 <= y0 {
            Rect::default()
        } else {
            Rect::new(x0, y0, x1 - x0, y1 - y0)
        }
    }
    pub fn union(&self, o: &Rect) -> Rect {
        if self.is_empty() {
            return *o;
        }
        if o.is_empty() {
            return *self;
        }
        let x0 = self.x.min(o.x);
        let y0 = self.y.min(o.y);
        let x1 = (self.x + self.w).max(o.x + o.w);
        let y1 = (self.y + self.h).max(o.y + o.h);
        Rect::new(x0, y0, x1 - x0, y1 - y0)
    }
    pub fn contains(&self, o: &Rect) -> bool {
        o.x >= self.x && o.y >= self.y && o.x + o.w <= self.x + self.w && o.y + o.h <= self.y + self.h
    }
}

/// How a zone's damage is best encoded (see `DemoServer` docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Flat colour blocks: RRE first.
    Flat,
    /// The scrolling band: CopyRect for the scroll, Hextile for new rows.
    Band,
    /// Text and gradients: ZRLE first.
    Panel,
}

/// Per-connection things drawn over the shared animation.
#[derive(Default, Clone)]
pub struct Overlay {
    pub name: String,
    pub text: String,
    pub pointer: Option<(u16, u16, u8)>,
    /// Most recent button presses, oldest first (bounded by the caller).
    pub clicks: Vec<(u16, u16)>,
}

/// The scene's geometry for one framebuffer size.
#[derive(Clone, Debug)]
pub struct Layout {
    pub w: usize,
    pub h: usize,
    pub bar: Rect,
    pub term: Rect,
    pub quads: [Rect; 4],
    pub band: Rect,
    /// Area the box bounces in (the union of the quadrants).
    pub arena: Rect,
    pub box_size: usize,
    /// Glyph scale (1 or 2) and cell size.
    pub scale: usize,
}

const GLYPH_W: usize = 5;
const GLYPH_H: usize = 7;

impl Layout {
    pub fn new(w: usize, h: usize) -> Self {
        let scale = if w >= 320 && h >= 200 { 2 } else { 1 };
        let cell_h = (GLYPH_H + 2) * scale;
        let bar_h = (cell_h + 2 * scale).min(h / 4);
        let band_h = (h / 6).min(128);
        let rest = h - bar_h - band_h;
        let term_h = (4 * cell_h + 4 * scale).min(rest / 3);
        let bar = Rect::new(0, 0, w, bar_h);
        let term = Rect::new(0, bar_h, w, term_h);
        let top = bar_h + term_h;
        let band_y = h - band_h;
        let band = Rect::new(0, band_y, w, band_h);
        let arena = Rect::new(0, top, w, band_y - top);
        let mx = w / 2;
        let my = top + arena.h / 2;
        let quads = [
            Rect::new(0, top, mx, my - top),
            Rect::new(mx, top, w - mx, my - top),
            Rect::new(0, my, mx, band_y - my),
            Rect::new(mx, my, w - mx, band_y - my),
        ];
        let box_size = (w.min(arena.h) / 6).clamp(1, 96).min(arena.h).min(w);
        Layout { w, h, bar, term, quads, band, arena, box_size, scale }
    }

    /// The zones partition the framebuffer; damage is found per zone.
    pub fn zones(&self) -> [(Rect, Kind); 7] {
        [
            (self.bar, Kind::Panel),
            (self.term, Kind::Panel),
            (self.quads[0], Kind::Flat),
            (self.quads[1], Kind::Flat),
            (self.quads[2], Kind::Flat),
            (self.quads[3], Kind::Flat),
            (self.band, Kind::Band),
        ]
    }

    /// Band scroll offset (pixels) at time `t_ms`.
    pub fn band_scroll(t_ms: u64) -> u64 {
        t_ms * BAND_SPEED / 1000
    }

    /// Where the bouncing box is at time `t_ms`.
    pub fn box_rect(&self, t_ms: u64) -> Rect {
        if self.arena.is_empty() || self.box_size == 0 {
            return Rect::default();
        }
        let rx = (self.arena.w - self.box_size) as u64;
        let ry = (self.arena.h - self.box_size) as u64;
        let x = tri(t_ms * BOX_SPEED_X / 1000, rx) as usize;
        let y = tri(t_ms * BOX_SPEED_Y / 1000, ry) as usize;
        Rect::new(self.arena.x + x, self.arena.y + y, self.box_size, self.box_size)
    }

    /// Band colour at column `x`, band-relative world row `wy`.
    #[inline]
    fn band_colour(x: usize, wy: u64) -> u32 {
        let i = (wy / 8 + (x / 32) as u64) % 6;
        BAND_COLOURS[i as usize]
    }

    /// Draw the whole scene for frame time `t_ms` into `buf` (w*h pixels).
    pub fn render(&self, t_ms: u64, ov: &Overlay, buf: &mut [u32]) {
        debug_assert_eq!(buf.len(), self.w * self.h);
        let w = self.w;
        // Background zones.
        for (i, q) in self.quads.iter().enumerate() {
            fill(buf, w, q, QUADRANT_COLOURS[i]);
        }
        fill(buf, w, &self.bar, BAR_COLOUR);
        // Terminal: a gradient, many colours per tile.
        let t = self.term;
        for y in t.y..t.y + t.h {
            let ry = (y - t.y) as u32;
            let row = &mut buf[y * w..y * w + w];
            for (x, p) in row.iter_mut().enumerate() {
                let gx = (x as u32 * 96) / w.max(1) as u32;
                *p = (16 + ry / 2).min(255) << 16 | (24 + ry).min(255) << 8 | (48 + gx);
            }
        }
        // Bar text: desktop name left, counter (tenths of seconds) right.
        let s = self.scale;
        let cell_w = (GLYPH_W + 1) * s;
        let ty = self.bar.y + s;
        if self.bar.h >= GLYPH_H * s {
            draw_text(buf, w, &self.bar, s, s, ty, &ov.name, BAR_TEXT);
            let counter = format!("{}.{}", t_ms / 1000, (t_ms / 100) % 10);
            let cw = counter.len() * cell_w;
            let cx = w.saturating_sub(cw + s);
            draw_text(buf, w, &self.bar, s, cx, ty, &counter, COUNTER_COLOUR);
        }
        // Terminal text: the last lines of what was typed, then a blinking cursor.
        if t.h >= GLYPH_H * s && t.w > 2 * s {
            let cell_h = (GLYPH_H + 2) * s;
            let cols = ((t.w - 2 * s) / cell_w).max(1);
            let rows = ((t.h - s) / cell_h).max(1);
            let lines = wrap(&ov.text, cols);
            let first = lines.len().saturating_sub(rows);
            let mut cursor = (t.x + 2 * s, t.y + s);
            for (i, line) in lines[first..].iter().enumerate() {
                let ly = t.y + s + i * cell_h;
                draw_text(buf, w, &t, s, t.x + 2 * s, ly, line, TEXT_COLOUR);
                cursor = (t.x + 2 * s + line.chars().count() * cell_w, ly);
            }
            if (t_ms / 500).is_multiple_of(2) {
                let c = Rect::new(cursor.0, cursor.1, GLYPH_W * s, GLYPH_H * s).intersect(&t);
                fill(buf, w, &c, TEXT_COLOUR);
            }
        }
        // Bouncing box with a border.
        let b = self.box_rect(t_ms);
        if !b.is_empty() {
            fill(buf, w, &b, BOX_BORDER);
            let bw = (b.w / 8).max(1);
            if b.w > 2 * bw && b.h > 2 * bw {
                fill(buf, w, &Rect::new(b.x + bw, b.y + bw, b.w - 2 * bw, b.h - 2 * bw), BOX_FILL);
            }
        }
        // Scrolling band: content is a function of (x, y + scroll).
        let scroll = Self::band_scroll(t_ms);
        let bd = self.band;
        for y in bd.y..bd.y + bd.h {
            let wy = (y - bd.y) as u64 + scroll;
            let row = &mut buf[y * w..y * w + w];
            for (x, p) in row.iter_mut().enumerate() {
                *p = Self::band_colour(x, wy);
            }
        }
        // Click marks, then the pointer crosshair (hollow centre, so the
        // mark of a click at the pointer stays visible).
        let all = Rect::new(0, 0, self.w, self.h);
        for &(cx, cy) in &ov.clicks {
            let (cx, cy) = (cx as usize, cy as usize);
            let r = Rect::new(cx.saturating_sub(2), cy.saturating_sub(2), 5 + cx.min(2) - 2, 5 + cy.min(2) - 2);
            fill(buf, w, &r.intersect(&all), CLICK_COLOUR);
        }
        if let Some((px, py, mask)) = ov.pointer {
            let c = if mask != 0 { POINTER_PRESSED_COLOUR } else { POINTER_COLOUR };
            let (px, py) = (px as usize, py as usize);
            for d in 3..=8usize {
                for (x, y) in [(px + d, py), (px.wrapping_sub(d), py), (px, py + d), (px, py.wrapping_sub(d))] {
                    if x < self.w && y < self.h {
                        buf[y * w + x] = c;
                    }
                }
            }
        }
    }
}

/// Triangle wave 0..=range..0 with period 2*range.
fn tri(n: u64, range: u64) -> u64 {
    if range == 0 {
        return 0;
    }
    let p = n % (2 * range);
    if p <= range {
        p
    } else {
        2 * range - p
    }
}

/// Fill `r` (already inside the buffer) with `c`.
pub fn fill(buf: &mut [u32], stride: usize, r: &Rect, c: u32) {
    for y in r.y..r.y + r.h {
        buf[y * stride + r.x..y * stride + r.x + r.w].fill(c);
    }
}

/// Split text into display lines: at '\n' and every `cols` characters.
fn wrap(text: &str, cols: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for ch in text.chars() {
        if ch == '\n' {
            lines.push(String::new());
            continue;
        }
        if lines.last().map_or(0, |l| l.chars().count()) >= cols {
            lines.push(String::new());
        }
        if let Some(l) = lines.last_mut() {
            l.push(ch);
        }
    }
    lines
}

/// Draw `text` with the built-in 5×7 font at scale `s`, clipped to `clip`.
#[allow(clippy::too_many_arguments)]
fn draw_text(buf: &mut [u32], stride: usize, clip: &Rect, s: usize, x0: usize, y0: usize, text: &str, c: u32) {
    let cell_w = (GLYPH_W + 1) * s;
    for (i, ch) in text.chars().enumerate() {
        let g = glyph(ch);
        let gx = x0 + i * cell_w;
        for (row, bits) in g.iter().enumerate() {
            for col in 0..GLYPH_W {
                if bits & (0x10 >> col) != 0 {
                    let r = Rect::new(gx + col * s, y0 + row * s, s, s).intersect(clip);
                    fill(buf, stride, &r, c);
                }
            }
        }
    }
}

/// 5×7 glyphs, rows top to bottom, bit 4 = leftmost column. Lower case is
/// drawn as upper case; anything unknown is a hollow box.
fn glyph(ch: char) -> [u8; 7] {
    match ch.to_ascii_uppercase() {
        ' ' => [0; 7],
        '0' => [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e],
        '1' => [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
        '2' => [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f],
        '3' => [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e],
        '4' => [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02],
        '5' => [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
        '6' => [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e],
        '7' => [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e],
        '9' => [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c],
        'A' => [0x0e, 0x11, 0x11, 0x11, 0x1f, 0x11, 0x11],
        'B' => [0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e],
        'C' => [0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e],
        'D' => [0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c],
        'E' => [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f],
        'F' => [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10],
        'G' => [0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f],
        'H' => [0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11],
        'I' => [0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f],
        'M' => [0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
        'P' => [0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10],
        'Q' => [0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d],
        'R' => [0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11],
        'S' => [0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e],
        'T' => [0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a],
        'X' => [0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0a, 0x04, 0x04, 0x04],
        'Z' => [0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c],
        ',' => [0x00, 0x00, 0x00, 0x00, 0x0c, 0x04, 0x08],
        ':' => [0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00],
        ';' => [0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x04, 0x08],
        '!' => [0x04, 0x04, 0x04, 0x04, 0x00, 0x00, 0x04],
        '?' => [0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04],
        '-' => [0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00],
        '+' => [0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00],
        '=' => [0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00],
        '/' => [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00],
        '_' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '\'' => [0x0c, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00],
        '"' => [0x0a, 0x0a, 0x0a, 0x00, 0x00, 0x00, 0x00],
        '@' => [0x0e, 0x11, 0x01, 0x0d, 0x15, 0x15, 0x0e],
        '#' => [0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a],
        '*' => [0x00, 0x04, 0x15, 0x0e, 0x15, 0x04, 0x00],
        '<' => [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02],
        '>' => [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08],
        _ => [0x1f, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1f],
    }
}
