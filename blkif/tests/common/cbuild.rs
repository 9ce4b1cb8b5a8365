//! Compile the C programs of the header tests against the real Xen headers
//! (Debian's libxen-dev), with the `cc` crate's view of the C compiler.
//!
//! Missing headers make the test FAIL, unless TGTKIT_SKIP_XEN_HEADERS=1.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether the header tests are skipped by request.
pub fn skipped() -> bool {
    if std::path::Path::new("/usr/include/xen/io/ring.h").exists() {
        return false;
    }
    if std::env::var("TGTKIT_SKIP_XEN_HEADERS").as_deref() == Ok("1") {
        eprintln!("xen headers missing and TGTKIT_SKIP_XEN_HEADERS=1: skipping");
        return true;
    }
    panic!(
        "xen/io/ring.h not found: install libxen-dev (scripts/deps-xen.sh), \
         or set TGTKIT_SKIP_XEN_HEADERS=1 to skip the header tests"
    );
}

/// Compile `source` (relative to the crate) into an executable named
/// `name`, with extra flags (such as `-m32`); returns its path.
pub fn compile(source: &str, name: &str, flags: &[&str]) -> PathBuf {
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("xen-c");
    std::fs::create_dir_all(&out_dir).unwrap();
    let exe = out_dir.join(name);
    let compiler = cc::Build::new()
        .target(env!("TGTKIT_CC_TARGET"))
        .host(env!("TGTKIT_CC_HOST"))
        .opt_level(2)
        .cargo_metadata(false)
        .cargo_warnings(false)
        .warnings(true)
        .get_compiler();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(source);
    let mut cmd: Command = compiler.to_command();
    cmd.args(flags)
        .arg("-std=gnu11")
        .arg("-Wall")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .arg("-lpthread");
    let out = cmd.output().expect("run the C compiler");
    assert!(
        out.status.success(),
        "compiling {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// Run an executable and return its stdout.
pub fn run(exe: &Path) -> String {
    let out = Command::new(exe).output().expect("run the C program");
    assert!(
        out.status.success(),
        "{} failed: {}",
        exe.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Parse "name value" lines.
pub fn parse(out: &str) -> std::collections::HashMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}
