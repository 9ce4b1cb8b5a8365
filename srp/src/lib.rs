//! SCSI RDMA Protocol (SRP) information units, sans-I/O.
//!
//! Every IU of SRP r16a (and the immediate-data descriptor of SRP-2), with
//! the big-endian layouts of Linux's `include/scsi/srp.h` (checked against
//! it by `tests/header_layout.rs`): [`login`] (`SRP_LOGIN_REQ`/`RSP`/`REJ`
//! and every reject reason), [`logout`], [`tsk_mgmt`], [`cmd`] (additional
//! CDB, task attributes, direct, indirect with partial lists, and
//! immediate data descriptors in [`desc`]), [`rsp`] (status, residuals,
//! response and sense data, credits), [`cred`] and [`aer`]; [`iu::Iu`]
//! decodes any of them by opcode, bounded by the negotiated IU length;
//! [`session::Session`] is the target side of a channel, sans-I/O, and
//! [`engine::EngineTarget`] runs its commands on a tgtkit engine target.
//! Decoding copies out of the bytes it is given, never panics, and
//! allocates at most what the IU holds.
//!
//! ```
//! use tgtkit_srp::login::{LoginReq, LOGIN_REQ_LEN};
//! let mut iu = [0u8; LOGIN_REQ_LEN];
//! iu[16..20].copy_from_slice(&4096u32.to_be_bytes());
//! let req = LoginReq::decode(&iu).unwrap();
//! assert_eq!(req.req_it_iu_len.get(), 4096);
//! ```

pub mod aer;
pub mod cmd;
pub mod cred;
pub mod desc;
pub mod engine;
pub mod error;
pub mod iu;
pub mod login;
pub mod logout;
pub mod rsp;
pub mod session;
pub mod tsk_mgmt;

pub use error::DecodeError;
pub use iu::Iu;

/// Decode a fixed-size IU `T` whose first byte must be `opcode`.
fn fixed<T: zerocopy::FromBytes + zerocopy::KnownLayout + zerocopy::Immutable>(
    iu: &[u8],
    opcode: u8,
) -> Result<T, DecodeError> {
    let need = core::mem::size_of::<T>();
    if iu.len() < need {
        return Err(DecodeError::Short {
            got: iu.len(),
            need,
        });
    }
    if iu[0] != opcode {
        return Err(DecodeError::Opcode {
            got: iu[0],
            want: opcode,
        });
    }
    T::read_from_prefix(iu)
        .map(|(v, _)| v)
        .map_err(|_| DecodeError::Short {
            got: iu.len(),
            need,
        })
}
