//! One raw ioctl shape for the Xen devices: an opcode and a pointer to a
//! caller-owned argument, returning the ioctl's integer result.

use std::io;
use std::os::fd::AsFd;

use rustix::ioctl::{opcode, Direction, Ioctl, IoctlOutput, Opcode};

/// `_IOC(_IOC_NONE, group, nr, size)`: how every gntdev and evtchn ioctl
/// is numbered (no direction bits, the argument's size).
pub(crate) const fn none(group: u8, nr: u8, size: usize) -> Opcode {
    opcode::from_components(Direction::None, group, nr, size)
}

struct Raw {
    opcode: Opcode,
    arg: *mut std::ffi::c_void,
}

// SAFETY: `call`'s contract makes the caller guarantee that `arg` is what
// the driver expects for `opcode`; the output is the syscall's return value
// and reads nothing through the pointer.
unsafe impl Ioctl for Raw {
    type Output = IoctlOutput;
    const IS_MUTATING: bool = true;

    fn opcode(&self) -> Opcode {
        self.opcode
    }

    fn as_ptr(&mut self) -> *mut std::ffi::c_void {
        self.arg
    }

    unsafe fn output_from_ptr(
        out: IoctlOutput,
        _: *mut std::ffi::c_void,
    ) -> rustix::io::Result<IoctlOutput> {
        Ok(out)
    }
}

/// Issue `opcode` on `fd` with `arg`.
///
/// # Safety
///
/// `arg` must point to the argument the driver expects for `opcode`
/// (valid for reads and writes of its full size, including any array that
/// follows a header), and whatever the driver does with it must not break
/// Rust's invariants.
pub(crate) unsafe fn call<T>(fd: impl AsFd, opcode: Opcode, arg: *mut T) -> io::Result<i32> {
    // SAFETY: forwarded to the caller.
    unsafe {
        rustix::ioctl::ioctl(
            fd,
            Raw {
                opcode,
                arg: arg.cast(),
            },
        )
    }
    .map_err(io::Error::from)
}
