//! nginx configuration text → directive tree.
//!
//! First stage of the config pipeline (`parser` → [`super::build`] → [`super::model`]).
//! The lexer follows nginx's `ngx_conf_read_token`: words separated by whitespace,
//! `;` ends a directive, `{ … }` opens a block, `#` starts a comment outside quotes,
//! single and double quotes group words and honour `\"`, `\'`, `\\`, `\n`, `\r`, `\t`.
//! `include` is expanded here (with globs, relative to the main file's directory) so
//! that later stages see one tree where every directive still knows its own file:line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::ConfError;

/// One directive: its name, arguments and, for block directives, the children.
#[derive(Debug, Clone)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
    pub block: Option<Vec<Directive>>,
    pub file: Arc<str>,
    pub line: usize,
}

impl Directive {
    /// An `[emerg]`-style error located at this directive.
    pub fn err(&self, msg: impl Into<String>) -> ConfError {
        ConfError::at(msg, &self.file, self.line)
    }
}

/// Every file read while parsing (for `-T`).
#[derive(Debug, Default, Clone)]
pub struct Sources {
    pub files: Vec<(PathBuf, String)>,
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Semi,
    Open,
    Close,
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> Lexer<'a> {
    fn next(&mut self, file: &str) -> Result<Option<(Tok, usize)>, ConfError> {
        let s = self.s;
        loop {
            while self.pos < s.len() && s[self.pos].is_ascii_whitespace() {
                if s[self.pos] == b'\n' {
                    self.line += 1;
                }
                self.pos += 1;
            }
            if self.pos < s.len() && s[self.pos] == b'#' {
                while self.pos < s.len() && s[self.pos] != b'\n' {
                    self.pos += 1;
                }
                continue;
            }
            break;
        }
        if self.pos >= s.len() {
            return Ok(None);
        }
        let line = self.line;
        let c = s[self.pos];
        match c {
            b';' => {
                self.pos += 1;
                return Ok(Some((Tok::Semi, line)));
            }
            b'{' => {
                self.pos += 1;
                return Ok(Some((Tok::Open, line)));
            }
            b'}' => {
                self.pos += 1;
                return Ok(Some((Tok::Close, line)));
            }
            _ => {}
        }
        let mut out = Vec::new();
        if c == b'"' || c == b'\'' {
            self.pos += 1;
            loop {
                if self.pos >= s.len() {
                    return Err(ConfError::at(
                        "unexpected end of file, expecting \"\"\"",
                        file,
                        self.line,
                    ));
                }
                let b = s[self.pos];
                if b == b'\n' {
                    self.line += 1;
                }
                if b == b'\\' && self.pos + 1 < s.len() {
                    let n = s[self.pos + 1];
                    match n {
                        b'"' | b'\'' | b'\\' => out.push(n),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        _ => {
                            out.push(b'\\');
                            out.push(n);
                        }
                    }
                    self.pos += 2;
                    continue;
                }
                self.pos += 1;
                if b == c {
                    break;
                }
                out.push(b);
            }
            if self.pos < s.len() {
                let n = s[self.pos];
                // nginx's lexer lets `)` follow a quoted string (`if ($a = 'x')`): it
                // starts the next word.
                if !(n.is_ascii_whitespace() || n == b';' || n == b'{' || n == b')') {
                    return Err(ConfError::at(format!("unexpected \"{}\"", n as char), file, self.line));
                }
            }
        } else {
            while self.pos < s.len() {
                let b = s[self.pos];
                if b.is_ascii_whitespace() || b == b';' || b == b'{' {
                    break;
                }
                if b == b'}' {
                    break;
                }
                if b == b'\\' && self.pos + 1 < s.len() {
                    out.push(b);
                    out.push(s[self.pos + 1]);
                    self.pos += 2;
                    continue;
                }
                self.pos += 1;
                out.push(b);
                // `${var}` keeps its braces inside one word.
                if b == b'$' && self.pos < s.len() && s[self.pos] == b'{' {
                    while self.pos < s.len() && s[self.pos] != b'}' {
                        out.push(s[self.pos]);
                        self.pos += 1;
                    }
                    if self.pos < s.len() {
                        out.push(b'}');
                        self.pos += 1;
                    }
                }
            }
        }
        let w = String::from_utf8(out).map_err(|_| ConfError::at("invalid UTF-8 in configuration", file, line))?;
        Ok(Some((Tok::Word(w), line)))
    }
}

/// Parses `path` (and everything it includes) into a directive tree.
pub fn parse_file(path: &Path, sources: &mut Sources) -> Result<Vec<Directive>, ConfError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfError::plain(format!("open() \"{}\" failed ({})", path.display(), os_err(&e))))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut depth = 0;
    parse_text_inner(
        &text,
        &path.display().to_string(),
        &base,
        sources,
        &mut depth,
        Some(path),
    )
}

/// Parses configuration text that is not read from a file (`-g`, the embedded demo).
pub fn parse_str(text: &str, name: &str, base: &Path) -> Result<Vec<Directive>, ConfError> {
    let mut sources = Sources::default();
    let mut depth = 0;
    parse_text_inner(text, name, base, &mut sources, &mut depth, None)
}

pub(crate) fn os_err(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let s = e.to_string();
            let msg = s.split(" (os error").next().unwrap_or(&s).to_string();
            format!("{code}: {msg}")
        }
        None => e.to_string(),
    }
}

fn parse_text_inner(
    text: &str,
    file: &str,
    base: &Path,
    sources: &mut Sources,
    depth: &mut usize,
    path: Option<&Path>,
) -> Result<Vec<Directive>, ConfError> {
    if let Some(p) = path {
        sources.files.push((p.to_path_buf(), text.to_string()));
    }
    *depth += 1;
    if *depth > 32 {
        return Err(ConfError::at("include nesting too deep", file, 1));
    }
    let file_arc: Arc<str> = Arc::from(file);
    let mut lx = Lexer {
        s: text.as_bytes(),
        pos: 0,
        line: 1,
    };
    // Stack of open blocks: (directive being built, children so far).
    let mut stack: Vec<(Directive, Vec<Directive>)> = Vec::new();
    let mut top: Vec<Directive> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut first_line = 0;
    while let Some((tok, line)) = lx.next(file)? {
        match tok {
            Tok::Word(w) => {
                if words.is_empty() {
                    first_line = line;
                }
                words.push(w);
            }
            Tok::Semi => {
                if words.is_empty() {
                    return Err(ConfError::at("unexpected \";\"", file, line));
                }
                let d = directive(&mut words, &file_arc, first_line);
                let dest = match stack.last_mut() {
                    Some((_, ch)) => ch,
                    None => &mut top,
                };
                if d.name == "include" {
                    let inc = expand_include(&d, base, sources, depth)?;
                    dest.extend(inc);
                } else {
                    dest.push(d);
                }
            }
            Tok::Open => {
                if words.is_empty() {
                    return Err(ConfError::at("unexpected \"{\"", file, line));
                }
                let d = directive(&mut words, &file_arc, first_line);
                stack.push((d, Vec::new()));
            }
            Tok::Close => {
                if !words.is_empty() {
                    return Err(ConfError::at("unexpected \"}\"", file, line));
                }
                let Some((mut d, ch)) = stack.pop() else {
                    return Err(ConfError::at("unexpected \"}\"", file, line));
                };
                d.block = Some(ch);
                match stack.last_mut() {
                    Some((_, pch)) => pch.push(d),
                    None => top.push(d),
                }
            }
        }
    }
    if !words.is_empty() {
        return Err(ConfError::at(
            "unexpected end of file, expecting \";\" or \"}\"",
            file,
            lx.line,
        ));
    }
    if !stack.is_empty() {
        return Err(ConfError::at("unexpected end of file, expecting \"}\"", file, lx.line));
    }
    *depth -= 1;
    Ok(top)
}

/// The directive made of the words collected so far (the first is its name).
fn directive(words: &mut Vec<String>, file: &Arc<str>, line: usize) -> Directive {
    let name = words.remove(0);
    Directive {
        name,
        args: std::mem::take(words),
        block: None,
        file: file.clone(),
        line,
    }
}

fn expand_include(
    d: &Directive,
    base: &Path,
    sources: &mut Sources,
    depth: &mut usize,
) -> Result<Vec<Directive>, ConfError> {
    if d.args.len() != 1 {
        return Err(d.err("invalid number of arguments in \"include\" directive"));
    }
    let pat = Path::new(&d.args[0]);
    let full = if pat.is_absolute() {
        pat.to_path_buf()
    } else {
        base.join(pat)
    };
    let full_s = full.display().to_string();
    let mut out = Vec::new();
    if full_s.contains(['*', '?', '[']) {
        let paths = glob::glob(&full_s).map_err(|e| d.err(format!("invalid include pattern ({e})")))?;
        let mut list: Vec<PathBuf> = paths.filter_map(Result::ok).filter(|p| p.is_file()).collect();
        list.sort();
        for p in list {
            out.extend(include_one(d, &p, base, sources, depth)?);
        }
    } else {
        out.extend(include_one(d, &full, base, sources, depth)?);
    }
    Ok(out)
}

fn include_one(
    d: &Directive,
    p: &Path,
    base: &Path,
    sources: &mut Sources,
    depth: &mut usize,
) -> Result<Vec<Directive>, ConfError> {
    let text =
        std::fs::read_to_string(p).map_err(|e| d.err(format!("open() \"{}\" failed ({})", p.display(), os_err(&e))))?;
    parse_text_inner(&text, &p.display().to_string(), base, sources, depth, Some(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<Directive> {
        parse_str(s, "t.conf", Path::new(".")).unwrap()
    }

    #[test]
    fn blocks_and_lines() {
        let t = p("worker_processes 2;\nhttp {\n  server { listen 80; }\n}\n");
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].name, "worker_processes");
        assert_eq!(t[0].args, vec!["2"]);
        let http = t[1].block.as_ref().unwrap();
        assert_eq!(http[0].name, "server");
        assert_eq!(http[0].line, 3);
        assert_eq!(http[0].block.as_ref().unwrap()[0].args, vec!["80"]);
    }

    #[test]
    fn quotes_comments_escapes() {
        let t = p("return 200 \"healthy\\n\"; # comment\nadd_header 'X' \"a b\";");
        assert_eq!(t[0].args, vec!["200", "healthy\n"]);
        assert_eq!(t[1].args, vec!["X", "a b"]);
    }

    #[test]
    fn variables_with_braces() {
        let t = p("return 301 https://${host}$request_uri;");
        assert_eq!(t[0].args, vec!["301", "https://${host}$request_uri"]);
    }

    #[test]
    fn a_quoted_string_then_a_parenthesis() {
        let t = p("if ($request_method = 'OPTIONS') { return 204; }");
        assert_eq!(t[0].args, vec!["($request_method", "=", "OPTIONS", ")"]);
        let e = parse_str("a 'x'y;", "x.conf", Path::new(".")).unwrap_err();
        assert_eq!(e.to_string(), "unexpected \"y\" in x.conf:1");
    }

    #[test]
    fn errors_have_lines() {
        let e = parse_str("http {\n server {\n", "x.conf", Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("x.conf:3"), "{e}");
        let e = parse_str("a;\n}\n", "x.conf", Path::new(".")).unwrap_err();
        assert_eq!(e.to_string(), "unexpected \"}\" in x.conf:2");
        let e = parse_str("a b", "x.conf", Path::new(".")).unwrap_err();
        assert!(e.to_string().starts_with("unexpected end of file"), "{e}");
    }

    #[test]
    fn include_glob() {
        let dir = std::env::temp_dir().join(format!("ringx-inc-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(dir.join("conf.d/a.conf"), "a 1;\n").unwrap();
        std::fs::write(dir.join("conf.d/b.conf"), "b 2;\n").unwrap();
        std::fs::write(dir.join("main.conf"), "x;\ninclude conf.d/*.conf;\n").unwrap();
        let mut src = Sources::default();
        let t = parse_file(&dir.join("main.conf"), &mut src).unwrap();
        let names: Vec<_> = t.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, vec!["x", "a", "b"]);
        assert!(t[2].file.ends_with("b.conf"));
        assert_eq!(src.files.len(), 3);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
