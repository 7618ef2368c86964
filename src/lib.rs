//! ncsh: a scriptable shell for NixOS-style imperative containers, and a drop-in
//! `nixos-container`. See ARCHITECTURE.md in the repository for the layers:
//! `container` (the domain), `host` (drivers), `build` (what runs inside), `manager` (the
//! operations), `api` + `engine` (Rhai), `flags` (nixos-container's flags), `cli` (the command
//! line) and `repl`.

pub mod api;
pub mod builder;
pub mod cli;
pub mod container;
pub mod engine;
pub mod error;
pub mod files;
pub mod flags;
pub mod host;
pub mod manager;
pub mod nixlang;
pub mod repl;
pub mod testrun;

/// mimalloc for every binary made with this library (ncsh, its tests and benches): an
/// evaluation of a configuration makes tens of thousands of small, short-lived objects (syntax
/// nodes, thunks, sets) and glibc's malloc and free were a quarter of its instructions.
#[global_allocator]
static ALLOCATOR: Allocator = Allocator;

/// mimalloc, asked for plain blocks where the alignment is one a plain block has: the
/// `mimalloc` crate asks for every block by `mi_malloc_aligned`, whose checks were a sixth of
/// an allocation (an evaluation makes about 60 000). A block that is not aligned after all is
/// given back and asked for aligned, so the alignment never rests on mimalloc's size classes.
struct Allocator;

/// The alignment `malloc` gives every block of at least that size (`max_align_t`).
const PLAIN_ALIGN: usize = 16;

// SAFETY: every block comes from mimalloc and goes back to it (`mi_free` takes blocks of both
// kinds); each is at least `layout.size()` long and aligned to `layout.align()` (checked).
unsafe impl std::alloc::GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        if align <= PLAIN_ALIGN && align <= size {
            // SAFETY: a plain allocation of a non-zero size (align >= 1 and align <= size).
            let p = unsafe { libmimalloc_sys::mi_malloc(size) }.cast::<u8>();
            if p.is_null() || (p as usize) & (align - 1) == 0 {
                return p;
            }
            // SAFETY: p came from mi_malloc just now.
            unsafe { libmimalloc_sys::mi_free(p.cast()) };
        }
        // SAFETY: as GlobalAlloc::alloc: align is a power of two, size non-zero.
        unsafe { libmimalloc_sys::mi_malloc_aligned(size, align) }.cast()
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: as GlobalAlloc::alloc_zeroed.
        unsafe { libmimalloc_sys::mi_zalloc_aligned(layout.size(), layout.align()) }.cast()
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: std::alloc::Layout) {
        // SAFETY: ptr came from this allocator, so from mimalloc.
        unsafe { libmimalloc_sys::mi_free(ptr.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as GlobalAlloc::realloc; ptr came from mimalloc.
        unsafe { libmimalloc_sys::mi_realloc_aligned(ptr.cast(), new_size, layout.align()) }.cast()
    }
}

#[cfg(test)]
mod fuzz;
