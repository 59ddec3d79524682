//! The executable's read-only pages, handed back once start-up is over.
//!
//! Linux keeps each page of the binary that ran or was read resident until memory runs
//! short. Start-up runs much code that no request runs again (the command line, the
//! config's parsing and validation, the store's schema), and the loader reads the whole
//! relocation table once. [`release`] drops the binary's read-only segments, code and
//! constants, from the process, as the kernel does to any clean page it reclaims: the
//! pages stay in the page cache, and whatever runs next faults back in what it uses.
//! The release build lays out the code the requests run apart from start-up's
//! (`link-order.txt`), so what comes back is the request path, not start-up. Called
//! once start-up is over and after each config reload (which runs start-up's parsing
//! again).
//!
//! Only segments the process never writes are dropped: the writable one (relocated
//! pointers, the `RELRO` part included, and thread-local templates) holds the loader's
//! writes, which dropping would undo. Code and constants are never written (the binary
//! has no text relocations), so dropping them loses nothing.

#[cfg(target_os = "linux")]
use std::ffi::{c_int, c_void};

/// Drops the executable's read-only segments from the process's memory; returns the
/// bytes of address space released (0 where nothing could be: not Linux, or the
/// segments were not found).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // FFI: dl_iterate_phdr walks the loader's list; madvise on our own image
pub fn release() -> usize {
    let mut released = 0usize;
    // SAFETY: `dl_iterate_phdr` calls `each` with valid program headers for each loaded
    // object, the executable first; `each` reads them and stops after the first.
    unsafe { libc::dl_iterate_phdr(Some(each), (&mut released as *mut usize).cast()) };
    released
}

/// Elsewhere nothing is handed back.
#[cfg(not(target_os = "linux"))]
pub fn release() -> usize {
    0
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
unsafe extern "C" fn each(info: *mut libc::dl_phdr_info, _: usize, data: *mut c_void) -> c_int {
    // SAFETY: the loader passes a valid `dl_phdr_info` whose `dlpi_phdr` points to
    // `dlpi_phnum` program headers, and `data` is `release`'s counter.
    let (info, released) = unsafe { (&*info, &mut *data.cast::<usize>()) };
    let headers = if info.dlpi_phdr.is_null() {
        &[][..]
    } else {
        // SAFETY: as above.
        unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
    };
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(0);
    if page == 0 {
        return 1;
    }
    for h in headers {
        if h.p_type != libc::PT_LOAD || h.p_flags & libc::PF_W != 0 {
            continue;
        }
        let start = info.dlpi_addr as usize + h.p_vaddr as usize;
        // Whole pages inside the segment only.
        let (start, end) = (
            start.next_multiple_of(page),
            (start + h.p_memsz as usize) / page * page,
        );
        if end <= start {
            continue;
        }
        // SAFETY: the range is whole pages of a read-only segment of this executable,
        // mapped privately from its file and never written: dropping them only makes
        // the next access read them from the file again.
        if unsafe { libc::madvise(start as *mut c_void, end - start, libc::MADV_DONTNEED) } == 0 {
            *released += end - start;
        }
    }
    1 // the executable is the first object: stop
}

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    use std::hint::black_box;

    /// 32 KiB of constants in the read-only segment.
    static TABLE: [u64; 4096] = {
        let mut t = [0u64; 4096];
        let mut i = 0;
        while i < t.len() {
            t[i] = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            i += 1;
        }
        t
    };

    fn sum() -> u64 {
        black_box(&TABLE)
            .iter()
            .fold(0u64, |a, x| a.wrapping_add(*x))
    }

    /// Resident kB of this executable's code (`/proc/self/smaps`).
    fn resident_code_kb() -> u64 {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let exe = exe.to_string_lossy().into_owned();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut ours = false;
        let mut kb = 0;
        for line in smaps.lines() {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() >= 6 && cols[0].contains('-') {
                ours = cols[5] == exe && cols[1] == "r-xp";
            } else if ours && cols.first() == Some(&"Rss:") {
                kb += cols[1].parse::<u64>().unwrap();
            }
        }
        kb
    }

    #[test]
    fn the_image_is_handed_back_and_still_runs() {
        let before_sum = sum();
        let before = resident_code_kb();
        let released = super::release();
        let after = resident_code_kb();
        assert!(released > 0, "no read-only segment found");
        assert!(
            after < before,
            "resident {before} kB before, {after} kB after"
        );
        // Constants read back from the file, code run again, and the relocated
        // pointers (a vtable, in the writable segment) intact.
        assert_eq!(sum(), before_sum);
        let call: Box<dyn Fn(u64) -> u64> = Box::new(|x| x + 1);
        assert_eq!(black_box(&call)(41), 42);
        assert_eq!(format!("{:?}", Some("image")), "Some(\"image\")");
    }
}
