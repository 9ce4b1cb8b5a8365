//! SCSI RDMA Protocol (SRP) information units, sans-I/O.
//!
//! This crate will hold the SRP information-unit codec (`SRP_LOGIN_REQ`,
//! `SRP_LOGIN_RSP`, `SRP_CMD`, `SRP_RSP`, `SRP_TSK_MGMT`, `SRP_I_LOGOUT`,
//! `SRP_CRED_REQ`, `SRP_AER_REQ` and their replies), direct and indirect
//! memory descriptors, and a transport-agnostic SRP target session (login,
//! request-limit credits, tags) that turns information units into
//! `tgtkit-scsi-core` engine commands.
