//! A file mapped shared, for a C peer process to map the same pages.

use std::fs::File;
use std::path::PathBuf;

pub struct SharedFile {
    pub path: PathBuf,
    pub base: *mut u8,
    pub len: usize,
    _file: File,
}

// SAFETY: the mapping is only accessed through raw pointers with volatile
// accesses (RingMemory, MemoryGrants), from any thread.
unsafe impl Send for SharedFile {}
// SAFETY: as above.
unsafe impl Sync for SharedFile {}

impl SharedFile {
    pub fn new(name: &str, pages: usize) -> Self {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let path = dir.join(format!("tgtkit-{name}-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let len = pages * 4096;
        file.set_len(len as u64).unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: mapping a file we own with its length; checked for failure.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED, "mmap failed");
        Self {
            path,
            base: base.cast(),
            len,
            _file: file,
        }
    }

    /// Volatile read of a u32 at `offset`.
    pub fn load_u32(&self, offset: usize) -> u32 {
        assert!(offset + 4 <= self.len);
        // SAFETY: in bounds and 4-aligned (callers use page offsets).
        unsafe { self.base.add(offset).cast::<u32>().read_volatile() }
    }
}

impl Drop for SharedFile {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping once nothing uses it (owners are
        // dropped before this).
        unsafe { libc::munmap(self.base.cast(), self.len) };
        let _ = std::fs::remove_file(&self.path);
    }
}
