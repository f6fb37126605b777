//! `log_format … escape=default|json|none` and `access_log … if=` (issue 10), line for
//! line against Debian's nginx on the same requests.

mod common;

use std::time::Duration;

use common::*;

fn block(port: u16, dir: &str) -> String {
    format!(
        r#"log_format js escape=json '{{"uri":"$request_uri","ua":"$http_user_agent","x":"$http_x_none","st":$status}}';
    log_format raw escape=none '$request_uri|$http_user_agent|$http_x_none|';
    log_format def '$request_uri|$http_user_agent|$http_x_none|';
    server {{
        listen 127.0.0.1:{port};
        access_log {dir}/js.log js;
        access_log {dir}/raw.log raw buffer=4k flush=1s;
        access_log {dir}/def.log def;
        access_log {dir}/if.log def if=$arg_log;
        location / {{ return 200 "ok\n"; }}
    }}"#
    )
}

#[test]
fn escaping_and_conditions_match_nginx() {
    let (rd, nd) = (tempdir("alog-r"), tempdir("alog-n"));
    let (rs, ns) = (rd.display().to_string(), nd.display().to_string());
    if nginx_bin().is_none() {
        eprintln!("skipped: nginx is not installed (run .ci/run)");
        return;
    }
    let (rp, np) = (free_port(), free_port());
    let conf = format!("daemon off; pid off; events {{}} http {{ {} }}", block(rp, &rs));
    let _ringx = Ringx::start(&conf, &[], addr_of(rp));
    let _nginx = Nginx::start(&block(np, &ns), addr_of(np));
    let agents: [&[u8]; 5] = [
        b"plain/1.0",
        b"quote\" back\\slash",
        b"tab\there",
        "utf8 caf\u{e9}".as_bytes(),
        b"",
    ];
    let mut sent: usize = 0;
    for (i, ua) in agents.iter().enumerate() {
        for a in [addr_of(rp), addr_of(np)] {
            let log = if i % 2 == 0 { "1" } else { "0" };
            let mut raw = format!("GET /p{i}?log={log}&q=%22 HTTP/1.1\r\nHost: x\r\n").into_bytes();
            if !ua.is_empty() {
                raw.extend_from_slice(b"User-Agent: ");
                raw.extend_from_slice(ua);
                raw.extend_from_slice(b"\r\n");
            }
            raw.extend_from_slice(b"Connection: close\r\n\r\n");
            assert_eq!(request(a, &raw).unwrap().status, 200);
        }
        sent += 1;
    }
    for f in ["js.log", "raw.log", "def.log", "if.log"] {
        let want = if f == "if.log" { sent.div_ceil(2) } else { sent };
        let read = |d: &std::path::Path| std::fs::read(d.join(f)).unwrap_or_default();
        wait_for(f, Duration::from_secs(5), || {
            read(&rd).split(|&b| b == b'\n').filter(|l| !l.is_empty()).count() == want
                && read(&nd).split(|&b| b == b'\n').filter(|l| !l.is_empty()).count() == want
        });
        assert_eq!(
            String::from_utf8_lossy(&read(&rd)),
            String::from_utf8_lossy(&read(&nd)),
            "{f}: ringx, then nginx"
        );
    }
    let js = std::fs::read_to_string(rd.join("js.log")).unwrap();
    assert!(js.contains(r#""ua":"quote\" back\\slash""#), "{js}");
    assert!(js.contains(r#""ua":"tab\there""#), "{js}");
    assert!(js.contains(r#","x":"","#), "{js}");
}
