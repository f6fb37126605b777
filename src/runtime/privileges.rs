//! `user USER [GROUP]`: when started as root, ringx serves traffic as USER.
//!
//! Where it sits: the master calls [`drop_to`] once, after binding the listeners and
//! opening the logs and before any other thread exists, so the new uid and gid hold
//! for every thread ringx will have. The master thread keeps three capabilities for
//! the jobs nginx's root master process does: `CAP_NET_BIND_SERVICE` (a reload that
//! adds `listen 80`), `CAP_DAC_OVERRIDE` (a reload that reads root-only keys and
//! configuration; recreating rotated logs and the pid file in root-owned directories)
//! and `CAP_CHOWN` (giving re-created logs to USER, as nginx's master does). Each
//! worker thread drops every capability as it starts ([`drop_thread_caps`]); it
//! reads files, accepts and writes logs as USER alone, so a request can reach only
//! what USER may read.
//!
//! Threads share one address space: this is the boundary nginx draws between its
//! master and workers as far as the kernel's checks go (files, ports, signals), not
//! against a worker whose memory is corrupted. ringx's request path is safe Rust.

use std::ffi::CString;
use std::io;
use std::path::Path;

/// What `user` names, looked up at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
}

/// nginx's lookups for `user USER [GROUP]` (GROUP defaults to USER's name, as
/// nginx); errors in nginx's words.
pub fn lookup(user: &str, group: Option<&str>) -> Result<Credentials, String> {
    let cu = CString::new(user).map_err(|_| format!("getpwnam(\"{user}\") failed"))?;
    // SAFETY: getpwnam returns NULL or a pointer to static storage, read at once
    // (configurations are loaded on one thread).
    let pw = unsafe { libc::getpwnam(cu.as_ptr()) };
    if pw.is_null() {
        return Err(format!("getpwnam(\"{user}\") failed"));
    }
    // SAFETY: pw is non-null and points to a valid passwd record.
    let uid = unsafe { (*pw).pw_uid };
    let group = group.unwrap_or(user);
    let cg = CString::new(group).map_err(|_| format!("getgrnam(\"{group}\") failed"))?;
    // SAFETY: as for getpwnam.
    let gr = unsafe { libc::getgrnam(cg.as_ptr()) };
    if gr.is_null() {
        return Err(format!("getgrnam(\"{group}\") failed"));
    }
    // SAFETY: gr is non-null and points to a valid group record.
    let gid = unsafe { (*gr).gr_gid };
    Ok(Credentials {
        user: user.to_string(),
        uid,
        gid,
    })
}

/// Who ringx became, once [`drop_to`] succeeded (for the rest of the process: a
/// reload that drops `user` changes nothing, and a worker started later still drops
/// its capabilities).
static DROPPED: std::sync::OnceLock<Credentials> = std::sync::OnceLock::new();

/// The credentials ringx dropped to, if it did.
pub fn dropped() -> Option<&'static Credentials> {
    DROPPED.get()
}

/// Whether ringx was started as root (`user` applies only then, as nginx).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 || DROPPED.get().is_some() }
}

/// nginx's default when root and no `user` is given: `nobody`, in `nogroup` where
/// that group exists (nginx's configure picks it so on Linux), else `nobody`.
pub fn default_user() -> Result<Credentials, String> {
    lookup("nobody", Some("nogroup")).or_else(|_| lookup("nobody", Some("nobody")))
}

const CAP_CHOWN: u32 = 0;
const CAP_DAC_OVERRIDE: u32 = 1;
const CAP_NET_BIND_SERVICE: u32 = 10;

/// Becomes `c` (supplementary groups, gid, uid), keeping the master thread's three
/// capabilities. Must run before any other thread is started.
pub fn drop_to(c: &Credentials) -> io::Result<()> {
    let name = CString::new(c.user.as_str()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: plain syscalls on this process's credentials; `name` outlives the call.
    unsafe {
        check(libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0), "prctl(PR_SET_KEEPCAPS)")?;
        check(libc::initgroups(name.as_ptr(), c.gid), "initgroups()")?;
        check(libc::setgid(c.gid), "setgid()")?;
        check(libc::setuid(c.uid), "setuid()")?;
        check(libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0), "prctl(PR_SET_KEEPCAPS)")?;
    }
    set_caps(1 << CAP_CHOWN | 1 << CAP_DAC_OVERRIDE | 1 << CAP_NET_BIND_SERVICE)?;
    let _ = DROPPED.set(c.clone());
    Ok(())
}

/// Drops every capability of the calling thread (a worker, as it starts).
pub fn drop_thread_caps() -> io::Result<()> {
    set_caps(0)
}

/// Sets the calling thread's effective and permitted capabilities to `mask` (of
/// the first 32), none inheritable.
fn set_caps(mask: u32) -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut h = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let d = [
        Data {
            effective: mask,
            permitted: mask,
            inheritable: 0,
        },
        Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        },
    ];
    // SAFETY: capset reads a version-3 header and two data records, both valid for
    // the call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut h as *mut Header, d.as_ptr()) };
    check(rc as i32, "capset()")
}

fn check(rc: i32, what: &str) -> io::Result<()> {
    if rc == -1 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what} failed ({e})")));
    }
    Ok(())
}

/// Creates `path` if needed and gives it to the worker user (nginx's master does
/// for the files it reopens), so workers can reopen it; a symbolic link is not
/// followed (the file is changed through the descriptor opened). Errors are the
/// caller's to log.
pub fn give(path: &Path, c: &Credentials) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    std::os::unix::fs::fchown(&f, Some(c.uid), None)
}
