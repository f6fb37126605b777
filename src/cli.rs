//! The command line, as nginx's: `-c FILE`, `-p PREFIX`, `-g DIRECTIVES`,
//! `-e ERROR_LOG`, `-t`, `-T`, `-q`, `-s SIGNAL`, `-v`, `-V`, `-h`/`-?`.
//! Flags may be grouped (`-tq`) and values attached (`-cFILE`) or separate.

use std::path::{Path, PathBuf};

use crate::config::model::LogTarget;
use crate::config::{self, LoadOptions};
use crate::runtime::master::{self, Master};

/// nginx's `configure arguments:` as ringx would have them: the modules it builds
/// in (`--with-…`) and nginx's default modules it does not have (`--without-…`), so
/// tools that read `nginx -V` (Test::Nginx's `has_module`) see what ringx serves.
const CONFIGURE: &str = "--conf-path=/etc/ringx/nginx.conf --with-http_ssl_module --with-http_v2_module \
--with-http_realip_module --with-http_auth_request_module --with-http_stub_status_module --without-http_fastcgi_module --without-http_uwsgi_module \
--without-http_scgi_module --without-http_memcached_module \
--without-http_split_clients_module --without-http_referer_module \
--without-http_empty_gif_module --without-http_browser_module \
--without-http_userid_module --without-http_mirror_module --without-http_ssi_module \
--without-http_charset_module --without-mail_pop3_module --without-mail_imap_module \
--without-mail_smtp_module --with-stream \
--without-stream_geo_module --without-stream_map_module --without-stream_split_clients_module \
--without-stream_set_module --without-stream_ssl_preread_module";

/// Where ringx looks for its config when `-c` is not given.
pub const DEFAULT_CONF: &str = "/etc/ringx/nginx.conf";

#[derive(Debug, Default, Clone)]
pub struct Args {
    pub conf: Option<PathBuf>,
    pub prefix: Option<PathBuf>,
    pub global: Option<String>,
    pub error_log: Option<String>,
    pub test: bool,
    pub dump: bool,
    pub quiet: bool,
    pub signal: Option<String>,
    pub version: bool,
    pub version_full: bool,
    pub help: bool,
}

pub fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut a = Args::default();
    let mut i = 0;
    while i < argv.len() {
        let arg = &argv[i];
        let Some(flags) = arg.strip_prefix('-') else {
            return Err(format!("invalid option: \"{arg}\""));
        };
        let chars: Vec<char> = flags.chars().collect();
        if chars.is_empty() {
            return Err(format!("invalid option: \"{arg}\""));
        }
        let mut j = 0;
        while j < chars.len() {
            let ch = chars[j];
            match ch {
                'h' | '?' => a.help = true,
                'v' => a.version = true,
                'V' => a.version_full = true,
                't' => a.test = true,
                'T' => {
                    a.test = true;
                    a.dump = true;
                }
                'q' => a.quiet = true,
                'c' | 'p' | 'g' | 'e' | 's' => {
                    let rest: String = chars[j + 1..].iter().collect();
                    let val = if !rest.is_empty() {
                        rest
                    } else {
                        i += 1;
                        argv.get(i).cloned().ok_or_else(|| {
                            format!(
                                "option \"-{ch}\" requires {}",
                                match ch {
                                    'c' => "file name",
                                    'p' => "directory name",
                                    'g' => "parameter",
                                    'e' => "file name",
                                    _ => "parameter",
                                }
                            )
                        })?
                    };
                    match ch {
                        'c' => a.conf = Some(PathBuf::from(val)),
                        'p' => a.prefix = Some(PathBuf::from(val)),
                        'g' => a.global = Some(val),
                        'e' => a.error_log = Some(val),
                        _ => a.signal = Some(val),
                    }
                    j = chars.len();
                    continue;
                }
                _ => return Err(format!("invalid option: \"{ch}\"")),
            }
            j += 1;
        }
        i += 1;
    }
    Ok(a)
}

const USAGE: &str = "Usage: ringx [-?hvVtTq] [-s signal] [-p prefix]
             [-e filename] [-c filename] [-g directives]

Options:
  -?,-h         : this help
  -v            : show version and exit
  -V            : show version and configure options then exit
  -t            : test configuration and exit
  -T            : test configuration, dump it and exit
  -q            : suppress non-error messages during configuration testing
  -s signal     : send signal to the running instance: stop, quit, reopen, reload
  -p prefix     : set prefix path (default: the configuration file's directory)
  -e filename   : set error log file (default: stderr)
  -c filename   : set configuration file (default: /etc/ringx/nginx.conf;
                  without it, ringx runs its built-in demo)
  -g directives : set global directives out of configuration file
";

/// Runs the command line; returns the process exit code.
pub fn main(argv: Vec<String>) -> i32 {
    let args = match parse_args(&argv[1.min(argv.len())..]) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ringx: {e}");
            eprint!("{USAGE}");
            return 1;
        }
    };
    if args.help {
        eprintln!("ringx version: ringx/{}", env!("CARGO_PKG_VERSION"));
        eprint!("{USAGE}");
        return 0;
    }
    if args.version || args.version_full {
        eprintln!("ringx version: ringx/{}", env!("CARGO_PKG_VERSION"));
        if args.version_full {
            eprintln!("built with rustc, httparse, mimalloc");
            eprintln!(
                "event drivers: io_uring (tokio-uring 0.5, the default where the kernel allows it), epoll (tokio); this kernel: io_uring {}",
                match crate::net::io::probe_uring() {
                    Ok(()) => "available".to_string(),
                    Err(e) => format!("not available ({e})"),
                }
            );
            eprintln!(
                "configuration: {DEFAULT_CONF} unless -c is given (an nginx configuration runs as it is: ringx -c /etc/nginx/nginx.conf); without -c and without {DEFAULT_CONF}, the built-in demo; the prefix (-p) defaults to the configuration file's directory"
            );
            eprintln!("configure arguments: {}", CONFIGURE);
        }
        if !args.test && args.signal.is_none() {
            return 0;
        }
    }
    // nginx resolves a relative `-c` and `-e` against the prefix (`-p`); without `-p`
    // ringx keeps them relative to the working directory.
    let in_prefix = |f: &str| match &args.prefix {
        Some(p) if Path::new(f).is_relative() => p.join(f),
        _ => PathBuf::from(f),
    };
    let conf = args
        .conf
        .as_deref()
        .map(|c| in_prefix(&c.to_string_lossy()))
        .or_else(|| {
            let d = PathBuf::from(DEFAULT_CONF);
            d.exists().then_some(d)
        });
    let demo = conf.is_none();
    let opts = LoadOptions {
        file: conf.clone(),
        prefix: args.prefix.clone(),
        global: args.global.clone(),
    };
    let name = conf
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "<embedded demo config>".into());

    if let Some(sig) = &args.signal {
        let loaded = match config::load(&opts) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("ringx: [emerg] {e}");
                return 1;
            }
        };
        let Some(pid) = loaded.config.pid.clone() else {
            eprintln!("ringx: [error] no \"pid\" file configured");
            return 1;
        };
        return match master::signal_running(&pid, sig) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("ringx: [error] {e}");
                1
            }
        };
    }

    let loaded = match config::load(&opts) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ringx: [emerg] {e}");
            if args.test {
                eprintln!("ringx: configuration file {name} test failed");
            }
            return 1;
        }
    };
    if !(args.test && args.quiet) {
        for (level, w) in &loaded.config.warnings {
            eprintln!("ringx: [{}] {w}", level.as_str());
        }
    }
    if args.test {
        if !args.quiet {
            eprintln!("ringx: the configuration file {name} syntax is ok");
            eprintln!("ringx: configuration file {name} test is successful");
        }
        if args.dump {
            for (p, text) in &loaded.sources.files {
                println!("# configuration file {}:", p.display());
                println!("{text}");
            }
            if demo {
                println!("# configuration file {name}:");
                println!("{}", config::DEMO_CONF);
            }
        }
        return 0;
    }
    let err_override = args.error_log.as_deref().map(|e| {
        if e == "stderr" {
            LogTarget::Stderr
        } else {
            LogTarget::File(in_prefix(e))
        }
    });
    let demo_backends = if demo {
        match crate::demo::start_backends() {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("ringx: [emerg] demo backends: {e}");
                return 1;
            }
        }
    } else {
        None
    };
    let master = match Master::start(opts, loaded.config, err_override) {
        Ok(m) => m,
        Err(crate::runtime::master::StartError::Logged(_)) => return 1,
        Err(e) => {
            eprintln!("ringx: [emerg] {e}");
            return 1;
        }
    };
    if let Some(b) = demo_backends {
        let addr = master.local_addrs()[0];
        crate::demo::run_tour(b, addr);
    }
    master.run()
}
