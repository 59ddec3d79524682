//! `pow` and `log`, the only two functions the binary would take from the C maths
//! library: tokio's scheduler calls `pow` (Rust's `f64::powf`) and SQLite's full-text
//! ranking `log`. Defined here, from the `libm` crate's implementations, the linker
//! (which drops a library nothing needs) leaves `libm.so` out of the binary's
//! dependencies, so the loader neither maps nor resolves it: about half a megabyte less
//! resident for every gateway (bench/results/2026-12-05-session14.md). A new use of
//! another C maths function links `libm.so` back in, nothing breaks.

/// C's `pow`.
#[allow(unsafe_code)] // an exported symbol's name; no unsafe operation
#[no_mangle]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

/// C's `log`.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn log(x: f64) -> f64 {
    libm::log(x)
}
