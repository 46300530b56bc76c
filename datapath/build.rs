//! Compiles the XDP program (`bpf/vswitch_xdp.c`) with clang into `$OUT_DIR`, where
//! `sys::bpf` embeds it. clang is already required by libxdp-sys (`make` installs it).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "bpf/vswitch_xdp.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=CLANG");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("vswitch_xdp.o");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    // <linux/types.h> includes <asm/types.h>, which Debian keeps under the multiarch
    // directory; clang's BPF target does not search it by itself.
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    let multiarch = format!("/usr/include/{arch}-linux-gnu");
    let status = Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg(format!("-I{multiarch}"))
        .args(["-c", src, "-o"])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run {clang} to build the XDP program ({e}); `make setup` installs clang")
        });
    assert!(status.success(), "{clang} failed to compile {src}");
}
