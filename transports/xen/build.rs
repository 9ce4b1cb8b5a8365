//! Records the target triple so the header tests can drive the `cc` crate
//! (which needs it) when they compile their C programs at test time.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    println!("cargo:rustc-env=TGTKIT_CC_TARGET={target}");
    println!("cargo:rustc-env=TGTKIT_CC_HOST={host}");
    println!("cargo:rerun-if-changed=build.rs");
}
