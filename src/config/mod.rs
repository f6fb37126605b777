//! Configuration: nginx.conf text → [`parser`] (directive tree with file:line) →
//! [`build`] (typed [`model::Config`] with defaults, inheritance and validation).
//! [`vars`] compiles strings with `$variables`.

pub mod build;
pub mod ciphers;
pub mod model;
pub mod parser;
pub mod squid;
pub mod tls;
pub mod vars;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use model::Config;

/// A configuration error, printed by the CLI as `[emerg] MESSAGE in FILE:LINE`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{msg}{}", .loc.as_ref().map(|(f, l)| format!(" in {f}:{l}")).unwrap_or_default())]
pub struct ConfError {
    pub msg: String,
    pub loc: Option<(Arc<str>, usize)>,
}

impl ConfError {
    pub fn at(msg: impl Into<String>, file: &str, line: usize) -> Self {
        ConfError {
            msg: msg.into(),
            loc: Some((Arc::from(file), line)),
        }
    }
    pub fn plain(msg: impl Into<String>) -> Self {
        ConfError {
            msg: msg.into(),
            loc: None,
        }
    }
    /// Adds the directive's location to an error that has none.
    pub fn at_dir(mut self, d: &parser::Directive) -> Self {
        if self.loc.is_none() {
            self.loc = Some((d.file.clone(), d.line));
        }
        self
    }
}

/// What the command line says about where the config comes from.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// `-c`; `None` means the embedded demo configuration.
    pub file: Option<PathBuf>,
    /// `-p`.
    pub prefix: Option<PathBuf>,
    /// `-g`.
    pub global: Option<String>,
}

/// A loaded configuration and the files it was read from.
pub struct Loaded {
    pub config: Config,
    pub sources: parser::Sources,
}

/// The embedded demo configuration (no `-c` and no file at the default path). Its
/// backends are started in-process by [`crate::demo`].
pub const DEMO_CONF: &str = include_str!("demo.conf");

/// Reads, parses and builds the configuration.
pub fn load(opts: &LoadOptions) -> Result<Loaded, ConfError> {
    let mut sources = parser::Sources::default();
    let mut warnings = Vec::new();
    let (mut tree, base) = match &opts.file {
        Some(f) => {
            let base = f.parent().map(Path::to_path_buf).unwrap_or_default();
            match squid_text(f)? {
                Some((text, warns)) => {
                    warnings = warns;
                    let name = format!("{} (translated from Squid's format)", f.display());
                    let tree = parser::parse_str(&text, &name, &base)?;
                    sources.files.push((PathBuf::from(name), text));
                    (tree, base)
                }
                None => (parser::parse_file(f, &mut sources)?, base),
            }
        }
        None => (
            parser::parse_str(DEMO_CONF, "<embedded demo config>", Path::new("."))?,
            PathBuf::from("."),
        ),
    };
    if let Some(g) = &opts.global {
        let extra = parser::parse_str(g, "command line", &base)?;
        for d in extra {
            if let Some(pos) = tree.iter().position(|x| x.name == d.name && x.block.is_none()) {
                return Err(tree[pos].err(format!("\"{}\" directive is duplicate", d.name)));
            }
            tree.push(d);
        }
    }
    let prefix = match &opts.prefix {
        Some(p) => p.clone(),
        None => base.clone(),
    };
    let config = build::build(
        &tree,
        &build::BuildEnv {
            prefix,
            conf_prefix: base,
        },
    )?;
    let mut config = config;
    let squid_warnings = warnings.into_iter().map(|w| (model::LogLevel::Warn, w));
    config.warnings.splice(0..0, squid_warnings);
    Ok(Loaded { config, sources })
}

/// A file in Squid's format, translated ([`squid`]); `None` for nginx's.
fn squid_text(f: &Path) -> Result<Option<(String, Vec<ConfError>)>, ConfError> {
    let Ok(text) = std::fs::read_to_string(f) else {
        return Ok(None);
    };
    if !squid::is_squid(&text) {
        return Ok(None);
    }
    squid::translate(&text, f).map(Some)
}
