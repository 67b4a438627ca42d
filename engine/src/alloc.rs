//! The allocator of the `wharf` binary: the system's, except that blocks of 1 MiB or more are
//! mapped fresh from the kernel and unmapped when freed.
//!
//! Every run opens a sled database, which allocates zeroed page tables of 2 and 4 MiB and frees
//! them when the run closes. glibc serves such a `calloc` from a free block of its heap when it
//! has one (a mmap threshold does not stop that) and must then clear all of it: a 2 MiB memset
//! per run, most of which the run never touches. A fresh mapping is zeroed by the kernel one page
//! at a time, only where touched. Large buffers (layers, blobs) grow with `mremap`, not a copy.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::null_mut;

/// Blocks at least this large are mapped (the same size glibc starts mapping at by default).
const LARGE: usize = 1 << 20;
/// mmap hands out page-aligned memory; anything asking for more goes to the system allocator.
const PAGE: usize = 4096;

pub struct LargeBlocksMapped;

fn is_large(size: usize, align: usize) -> bool {
    size >= LARGE && align <= PAGE
}

fn map(size: usize) -> *mut u8 {
    // SAFETY: a new private anonymous mapping; no existing memory is touched.
    let p = unsafe {
        libc::mmap(null_mut(), size, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
    };
    if p == libc::MAP_FAILED { null_mut() } else { p.cast() }
}

// SAFETY: every block is either the system allocator's (small, or over-aligned) or one whole
// mapping of `size` bytes (large): `is_large` of the block's layout, which Rust passes back to
// `dealloc`/`realloc` unchanged, says which, so each is freed by the allocator that made it.
unsafe impl GlobalAlloc for LargeBlocksMapped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(layout.size(), layout.align()) { map(layout.size()) } else { unsafe { System.alloc(layout) } }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // Fresh mappings read as zeroes.
        if is_large(layout.size(), layout.align()) {
            map(layout.size())
        } else {
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_large(layout.size(), layout.align()) {
            // SAFETY: `ptr` is the start of a mapping of `layout.size()` bytes made by `map`.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        } else {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (was_large, is_now_large) = (is_large(layout.size(), layout.align()), is_large(new_size, layout.align()));
        match (was_large, is_now_large) {
            (false, false) => unsafe { System.realloc(ptr, layout, new_size) },
            (true, true) => {
                // SAFETY: `ptr` is a whole mapping of `layout.size()` bytes; the kernel moves or grows it.
                let p = unsafe { libc::mremap(ptr.cast(), layout.size(), new_size, libc::MREMAP_MAYMOVE) };
                if p == libc::MAP_FAILED { null_mut() } else { p.cast() }
            }
            _ => {
                // Crossing the threshold: a block of the other kind, then copy and free.
                // SAFETY: `new_size` with the old alignment is a valid layout (GlobalAlloc contract).
                let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
                let new = unsafe { self.alloc(new_layout) };
                if !new.is_null() {
                    // SAFETY: both blocks are live and at least this long; they do not overlap.
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                new
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_blocks_are_zeroed_grow_and_shrink_across_the_threshold() {
        let a = LargeBlocksMapped;
        unsafe {
            let layout = Layout::from_size_align(3 << 20, 8).unwrap();
            let p = a.alloc_zeroed(layout);
            assert!(!p.is_null());
            assert!(std::slice::from_raw_parts(p, layout.size()).iter().all(|&b| b == 0));
            *p.add(100) = 7;
            // Large to larger (mremap), then down below the threshold (copy), then up again.
            let p = a.realloc(p, layout, 5 << 20);
            assert_eq!(*p.add(100), 7);
            let p = a.realloc(p, Layout::from_size_align(5 << 20, 8).unwrap(), 4096);
            assert_eq!(*p.add(100), 7);
            let p = a.realloc(p, Layout::from_size_align(4096, 8).unwrap(), 2 << 20);
            assert_eq!(*p.add(100), 7);
            a.dealloc(p, Layout::from_size_align(2 << 20, 8).unwrap());
        }
    }
}
