//! Xen shared-ring mechanics, as defined by Xen's public `io/ring.h`.
//!
//! This crate will hold the generic shared ring: the shared header
//! (`req_prod`, `req_event`, `rsp_prod`, `rsp_event`), entry counts for
//! single- and multi-page rings, a back ring (consume requests, push
//! responses, decide whether to notify) and a front ring, all over a memory
//! region supplied by the caller and accessed only through volatile and
//! atomic accessors. It does no I/O.
#![forbid(unsafe_op_in_unsafe_fn)]
