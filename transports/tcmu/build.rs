//! Compiles `csrc/layout.c` against the kernel's `linux/target_core_user.h`
//! (Debian package linux-libc-dev), so the layout tests in `src/abi.rs`
//! compare tgtkit's structs with the real header's sizes and offsets.

fn main() {
    println!("cargo:rerun-if-changed=csrc/layout.c");
    cc::Build::new()
        .file("csrc/layout.c")
        .warnings(true)
        .compile("tgtkit_tcmu_layout");
}
