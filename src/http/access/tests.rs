//! Access control, one row per case, through `route` (what the server calls).

use std::time::{Duration, Instant};

use super::*;
use crate::http::{route, Action, Site};

const KEY: &[u8] = b"an HS256 key of at least 32 bytes!!";
const NOW: u64 = 1_900_000_000;

fn head(target: &str, fields: &[(&str, &str)]) -> Head {
    let mut headers = vec![("Host".to_string(), "127.0.0.1:6080".to_string())];
    for (n, v) in fields {
        headers.retain(|(h, _)| !(n.eq_ignore_ascii_case("host") && h == "Host"));
        headers.push((n.to_string(), v.to_string()));
    }
    Head { method: "GET".into(), target: target.into(), version_minor: 1, headers }
}

fn ws(target: &str, fields: &[(&str, &str)]) -> Head {
    let mut all = vec![
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ];
    all.extend_from_slice(fields);
    head(target, &all)
}

fn site(cfg: AccessConfig) -> Site {
    Site { access: Access::new(&cfg, "127.0.0.1:6080".parse().unwrap()).unwrap(), ..Site::default() }
}

fn jwt_site() -> Site {
    site(AccessConfig {
        jwt_secret: Some(KEY.to_vec()),
        jwt_targets: vec![TargetRule::parse("10.1.0.0/16:5900-5999").unwrap()],
        ..AccessConfig::default()
    })
}

fn token(claims: &str) -> String {
    jwt::sign(claims, KEY)
}

/// (status, the response head) of routing `h`.
fn status(site: &mut Site, h: &Head, now: Instant) -> (u16, String) {
    match route(h, site, &Peer::local(now, NOW)) {
        Action::Respond { bytes, status, .. } => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            (status, text)
        }
        Action::Upgrade(up) => (101, format!("{up:?}")),
        Action::File(f) => panic!("route() reads files itself, got {f:?}"),
    }
}

#[test]
fn host_rows() {
    let mut open = Site::default();
    let now = Instant::now();
    let rows: &[(&str, u16)] = &[
        ("127.0.0.1:6080", 200),
        ("localhost:6080", 200),
        ("[::1]:6080", 200),
        ("evil.example", 421),
        ("evil.example:6080", 421),
    ];
    for (host, want) in rows {
        for h in [head("/", &[("Host", host)]), ws("/ws", &[("Host", host)]), ws("/websockify", &[("Host", host)])] {
            let want = if *want == 200 && h.header("upgrade").is_some() { 101 } else { *want };
            let (got, text) = status(&mut open, &h, now);
            assert_eq!(got, want, "Host {host} {}: {text}", h.target);
            if got == 421 {
                assert!(text.contains("--allowed-host"), "{text}");
            }
        }
    }
    // /healthz answers load balancers whatever their Host.
    assert_eq!(status(&mut open, &head("/healthz", &[("Host", "lb.internal")]), now).0, 200);
    let mut named = site(AccessConfig { allowed_hosts: vec!["vnc.example.com".into()], ..AccessConfig::default() });
    assert_eq!(status(&mut named, &head("/", &[("Host", "VNC.example.com:6080")]), now).0, 200);
    assert_eq!(status(&mut named, &head("/", &[("Host", "evil.example")]), now).0, 421);
}

#[test]
fn exposure_needs_auth_or_no_auth() {
    let any: SocketAddr = "0.0.0.0:6080".parse().unwrap();
    let lan: SocketAddr = "192.0.2.7:6080".parse().unwrap();
    let e = Access::new(&AccessConfig::default(), any).unwrap_err();
    assert!(e.contains("--no-auth") && e.contains("--jwt-secret-file"), "{e}");
    assert!(Access::new(&AccessConfig::default(), lan).is_err());
    assert!(Access::new(&AccessConfig { no_auth: true, ..AccessConfig::default() }, any).is_ok());
    assert!(Access::new(&AccessConfig { jwt_secret: Some(KEY.to_vec()), ..AccessConfig::default() }, any).is_ok());
    assert!(Access::new(&AccessConfig::default(), "[::1]:6080".parse().unwrap()).is_ok());
    let targets_alone = AccessConfig { jwt_targets: vec![TargetRule::parse("*").unwrap()], ..AccessConfig::default() };
    assert!(Access::new(&targets_alone, "127.0.0.1:1".parse().unwrap()).is_err());
}

#[test]
fn jwt_rows() {
    let now = Instant::now();
    let good = token(&format!(r#"{{"exp":{}}}"#, NOW + 60));
    let expired = token(&format!(r#"{{"exp":{}}}"#, NOW - 1));
    let forged = jwt::sign(&format!(r#"{{"exp":{}}}"#, NOW + 60), b"not the key, but 32 bytes long!!");
    let lab = token(&format!(r#"{{"exp":{},"token":"lab"}}"#, NOW + 60));
    let ro = token(&format!(r#"{{"exp":{},"view_only":true}}"#, NOW + 60));
    let to_allowed = token(&format!(r#"{{"exp":{},"host":"10.1.2.3","port":5901}}"#, NOW + 60));
    let to_other = token(&format!(r#"{{"exp":{},"host":"10.2.0.1","port":5901}}"#, NOW + 60));
    let to_name = token(&format!(r#"{{"exp":{},"host":"vnc.lan","port":5901}}"#, NOW + 60));
    let bearer = format!("Bearer {good}");
    let cookie = format!("theme=dark; {COOKIE}={good}");
    // (what, request, status, text the response or the Upgrade must contain)
    let rows: Vec<(&str, Head, u16, String)> = vec![
        ("page without token", head("/", &[]), 401, "access token is required".into()),
        ("ws without token", ws("/ws", &[]), 401, "access token is required".into()),
        ("relay without token", ws("/websockify", &[]), 401, "access token is required".into()),
        ("asset without token", head("/js/main.js", &[]), 401, String::new()),
        ("page ?jwt=", head(&format!("/?jwt={good}"), &[]), 200, format!("Set-Cookie: {COOKIE}={good}; Max-Age=60")),
        ("page ?token=JWT", head(&format!("/?token={good}"), &[]), 200, "HttpOnly; SameSite=Strict".into()),
        ("asset by cookie", head("/js/main.js", &[("Cookie", &cookie)]), 200, String::new()),
        ("ws by cookie", ws("/ws", &[("Cookie", &cookie)]), 101, "query: []".into()),
        ("ws by bearer", ws("/ws?token=x", &[("Authorization", &bearer)]), 101, r#"("token", "x")"#.into()),
        (
            "ws ?jwt= leaves the query",
            ws(&format!("/ws?jwt={good}&token=x"), &[]),
            101,
            r#"query: [("token", "x")]"#.into(),
        ),
        ("relay ?token=JWT (websockify)", ws(&format!("/websockify?token={good}"), &[]), 101, "query: []".into()),
        ("expired", ws(&format!("/ws?jwt={expired}"), &[]), 401, "expired".into()),
        ("forged", head(&format!("/?jwt={forged}"), &[]), 401, "signature".into()),
        ("garbage", head("/?jwt=abc", &[]), 401, "malformed".into()),
        ("token claim fills ?token=", ws(&format!("/ws?jwt={lab}"), &[]), 101, r#"("token", "lab")"#.into()),
        ("token claim, same ?token=", ws(&format!("/ws?jwt={lab}&token=lab"), &[]), 101, r#"("token", "lab")"#.into()),
        ("token claim, other ?token=", ws(&format!("/ws?jwt={lab}&token=prod"), &[]), 403, "does not grant".into()),
        ("view_only claim on /ws", ws(&format!("/ws?jwt={ro}&view_only=0"), &[]), 101, r#"("view_only", "1")"#.into()),
        ("view_only claim on relay", ws(&format!("/websockify?jwt={ro}"), &[]), 403, "cannot use the relay".into()),
        ("allowed target", ws(&format!("/ws?jwt={to_allowed}"), &[]), 101, "target: Some(10.1.2.3:5901)".into()),
        ("target + ?token=", ws(&format!("/ws?jwt={to_allowed}&token=x"), &[]), 403, "names its target".into()),
        ("target outside --jwt-target", ws(&format!("/ws?jwt={to_other}"), &[]), 403, "not allowed here".into()),
        ("target by name", ws(&format!("/ws?jwt={to_name}"), &[]), 403, "must be an IP address".into()),
        ("healthz needs nothing", head("/healthz", &[]), 200, "ok".into()),
    ];
    let mut s = jwt_site();
    for (what, h, want, text) in rows {
        let (got, resp) = status(&mut s, &h, now);
        assert_eq!(got, want, "{what}: {resp}");
        assert!(resp.contains(&text), "{what}: {text:?} not in {resp}");
        if got == 401 {
            assert!(!resp.contains("WWW-Authenticate"), "{what}: no Basic challenge without Basic");
        }
    }
    // The cookie is set only when the token came in the URL.
    let (_, resp) = status(&mut s, &head("/", &[("Cookie", &cookie)]), now);
    assert!(!resp.contains("Set-Cookie"), "{resp}");
}

#[test]
fn target_rules() {
    let rows: &[(&str, &str, bool)] = &[
        ("10.1.0.0/16:5900-5999", "10.1.255.1:5900", true),
        ("10.1.0.0/16:5900-5999", "10.2.0.1:5900", false),
        ("10.1.0.0/16:5900-5999", "10.1.0.1:6000", false),
        ("127.0.0.1:5901", "127.0.0.1:5901", true),
        ("127.0.0.1:5901", "127.0.0.1:5902", false),
        ("127.0.0.1:*", "127.0.0.1:22", true),
        ("[fd00::/8]:5900", "[fd12::1]:5900", true),
        ("[fd00::/8]:5900", "[fe80::1]:5900", false),
        ("[fd00::/8]:5900", "10.0.0.1:5900", false),
        ("0.0.0.0/0:5900", "[::1]:5900", false),
        ("*", "[::1]:1", true),
        ("*", "8.8.8.8:53", true),
    ];
    for (rule, addr, want) in rows {
        let r = TargetRule::parse(rule).unwrap();
        assert_eq!(r.allows(addr.parse().unwrap()), *want, "{rule} vs {addr}");
    }
    for bad in ["", "10.0.0.1", "10.0.0.1:0", "10.0.0.1:2-1", "10.0.0.0/33:1", "host:5900", "[::1:5900", "::1:5900"] {
        assert!(TargetRule::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn basic_rows_and_throttle() {
    let users = basic::Users::parse(&basic::hash_entry("ann", b"right", 4).unwrap()).unwrap();
    let mut s = site(AccessConfig { basic_users: Some(users), ..AccessConfig::default() });
    let auth = |u: &str, p: &str| {
        use base64::Engine as _;
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")))
    };
    let t0 = Instant::now();
    let (st, resp) = status(&mut s, &head("/", &[]), t0);
    assert_eq!(st, 401);
    assert!(resp.contains("WWW-Authenticate: Basic realm=\"wsvnc\""), "{resp}");
    assert_eq!(status(&mut s, &head("/", &[("Authorization", &auth("ann", "right"))]), t0).0, 200);
    assert_eq!(status(&mut s, &ws("/ws", &[("Authorization", &auth("ann", "right"))]), t0).0, 101);
    // Wrong passwords: 401 with the challenge, then 429 while blocked.
    let mut now = t0;
    for n in 1..=5 {
        now += Duration::from_secs(5); // past the growing delay (at most 4 s before the lockout)
        let (st, resp) = status(&mut s, &head("/", &[("Authorization", &auth("ann", "wrong"))]), now);
        assert_eq!(st, 401, "failure {n}: {resp}");
        assert!(resp.contains("WWW-Authenticate"), "{resp}");
    }
    now += Duration::from_secs(5); // inside the 10 s lockout
    let (st, resp) = status(&mut s, &head("/", &[("Authorization", &auth("ann", "right"))]), now);
    assert_eq!(st, 429, "locked out even with the right password: {resp}");
    assert!(resp.contains("Retry-After: ") && resp.contains("retry in"), "{resp}");
    // A bcrypt check budget per second: the 5th fresh check within a second is 503.
    let mut s2 =
        site(AccessConfig { basic_users: s.access.basic.as_ref().map(|b| b.users.clone()), ..AccessConfig::default() });
    let t1 = Instant::now();
    for i in 0..HASHES_PER_SECOND {
        let peer = Peer { addr: SocketAddr::from(([10, 0, 0, i as u8 + 1], 1)), now: t1, unix_time: NOW };
        let h = head("/", &[("Authorization", &auth("bob", "x"))]);
        assert!(matches!(route(&h, &mut s2, &peer), Action::Respond { status: 401, .. }));
    }
    let peer = Peer { addr: SocketAddr::from(([10, 0, 0, 99], 1)), now: t1, unix_time: NOW };
    let h = head("/", &[("Authorization", &auth("ann", "right"))]);
    assert!(matches!(route(&h, &mut s2, &peer), Action::Respond { status: 503, .. }));
    let later = Peer { now: t1 + Duration::from_secs(1), ..peer };
    assert!(matches!(route(&h, &mut s2, &later), Action::Respond { status: 200, .. }));
    // Once verified, the credential is remembered: no budget needed.
    for _ in 0..10 {
        assert!(matches!(route(&h, &mut s2, &later), Action::Respond { status: 200, .. }));
    }
}
