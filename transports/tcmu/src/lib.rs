//! TCMU transport: serve LIO `target_core_user` devices with the tgtkit engine.
//!
//! LIO's user backstore (`core/user_N/<dev>`) puts the SCSI commands it
//! receives on a ring in memory it shares with userspace through a UIO
//! device (`/dev/uioN`), and announces devices over the generic netlink
//! family "TCM-USER". This crate is the userspace side, as a library:
//!
//! * [`abi`]: the structs and codes of `linux/target_core_user.h` (v2),
//!   checked against the real header;
//! * [`mem`]: the shared mapping, accessed only through volatile copies and
//!   atomics;
//! * [`ring`]: the command ring without I/O (read entries, validate them,
//!   answer in or out of order);
//! * [`uio`]: finding devices in sysfs, mapping them, waiting and kicking;
//! * [`netlink`]: device events of the "TCM-USER" generic netlink family;
//! * [`handler`]: cfgstring subtypes (`file/<path>`, `ram/<size>`) to backstores;
//! * [`device`]: a device served by the engine ([`device::Device`]), and the
//!   runtime-agnostic ring server under it;
//! * `mock` (feature `test-utils`): a simulated kernel over plain memory.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod abi;
pub mod device;
pub mod handler;
pub mod mem;
#[cfg(any(test, feature = "test-utils"))]
pub mod mock;
pub mod netlink;
pub mod ring;
pub mod uio;
