//! Photo-like content for the examples that measure encoders: Debian's
//! gnome-backgrounds wallpapers, each scaled and cropped to 640×480 by
//! ImageMagick (`convert`).

use std::process::Command;

use wsvnc::fb::Framebuffer;

pub const W: u16 = 640;
pub const H: u16 = 480;
const DIR: &str = "/usr/share/backgrounds/gnome";

/// The wallpapers' file names, sorted.
pub fn names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(DIR)
        .unwrap_or_else(|e| panic!("{DIR}: {e} (apt-get install gnome-backgrounds)"))
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".webp") && !n.starts_with("vnc"))
        .collect();
    names.sort();
    names
}

/// Wallpaper `name` as a 640×480 framebuffer.
pub fn load(name: &str) -> Framebuffer {
    let path = format!("{DIR}/{name}");
    let out = Command::new("convert")
        .args([&path, "-resize", "640x480^", "-gravity", "center", "-extent", "640x480", "-depth", "8", "rgba:-"])
        .output()
        .expect("convert (Debian package imagemagick)");
    assert!(out.status.success() && out.stdout.len() == W as usize * H as usize * 4, "convert {path}");
    let mut fb = Framebuffer::new(W, H);
    let px: Vec<u8> = out.stdout.chunks(4).flat_map(|p| [p[0], p[1], p[2], 255]).collect();
    fb.put_rgba(fb.full_rect(), &px).unwrap();
    fb
}
