//! SCSI RDMA Protocol (SRP) information units, sans-I/O.
//!
//! Work in progress: only the login and logout families ([`login`], [`logout`]) are implemented so far:
//! big-endian `SRP_LOGIN_REQ`, `SRP_LOGIN_RSP` and `SRP_LOGIN_REJ` layouts
//! (SRP r16a, Linux `include/scsi/srp.h`) and every login reject reason.
//!
//! ```
//! use tgtkit_srp::login::{LoginReq, LOGIN_REQ_LEN};
//! let mut iu = [0u8; LOGIN_REQ_LEN];
//! iu[16..20].copy_from_slice(&4096u32.to_be_bytes());
//! let req = LoginReq::decode(&iu).unwrap();
//! assert_eq!(req.req_it_iu_len.get(), 4096);
//! ```

pub mod login;
pub mod logout;
