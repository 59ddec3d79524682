//! The release binary's function order (`link-order.txt`, written by
//! `bench/link-order.sh`).
//!
//! Linux maps an executable's code into a process 64 KiB at a time around each page it
//! runs (fault-around), so the gateway's resident size depends on how far apart the
//! functions it uses lie. The linker lays them out in whatever order compilation left
//! them, which scatters start-up and the request path across most of the binary. The
//! file lists the functions a gateway's usual requests run, then those only its start-up
//! runs; LLD puts them first, in that order. Once start-up is over the gateway hands its
//! read-only pages back (`src/image.rs`), and the requests fault back in only their own
//! stretch. Names the file lists that a build no longer has
//! (code changed since it was written) are skipped: the order decays, the build never
//! fails. The names are those of `cargo build --release -p liter-llm-cli`: building
//! other packages at once, or another profile, changes the symbols' hashes, and the
//! binary links unordered.
//!
//! Only for release builds linked by LLD (Rust's default linker on x86_64 Linux since
//! 1.90, with its bundled `rust-lld`), unless another linker is configured, or with
//! `LITER_LLM_LINK_ORDER=0`. `LITER_LLM_LINK_MAP=FILE` also writes the linker's map
//! (every symbol's address), which `bench/link-order.sh` reads.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=link-order.txt");
    println!("cargo:rerun-if-env-changed=LITER_LLM_LINK_ORDER");
    println!("cargo:rerun-if-env-changed=LITER_LLM_LINK_MAP");
    if env::var("PROFILE").as_deref() != Ok("release") || !lld_links() {
        return;
    }
    let order =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join("link-order.txt");
    if env::var("LITER_LLM_LINK_ORDER").as_deref() != Ok("0") && order.is_file() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
    if let Ok(map) = env::var("LITER_LLM_LINK_MAP") {
        println!("cargo:rustc-link-arg-bins=-Wl,-Map={map}");
    }
}

/// Whether the binary is linked by the toolchain's own LLD: x86_64 Linux, Rust 1.90 or
/// later with `rust-lld` in its sysroot, and no linker chosen by configuration.
fn lld_links() -> bool {
    if env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu")
        || env::var_os("RUSTC_LINKER").is_some()
    {
        return false;
    }
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if ["linker", "fuse-ld", "link-self-contained"]
        .iter()
        .any(|f| flags.contains(f))
    {
        return false;
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let minor = Command::new(&rustc)
        .arg("-V")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| v.split(['.', ' ']).nth(2)?.parse::<u32>().ok());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok());
    let bundled = sysroot.is_some_and(|root| {
        Path::new(root.trim())
            .join("lib/rustlib/x86_64-unknown-linux-gnu/bin/gcc-ld/ld.lld")
            .is_file()
    });
    minor.is_some_and(|m| m >= 90) && bundled
}
