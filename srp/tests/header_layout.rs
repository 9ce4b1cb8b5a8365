//! Our login IU layouts against the kernel's `include/scsi/srp.h`
//! (Debian linux-headers-*-common, installed by scripts/deps-srp.sh).
//! A missing header FAILS this test.

use std::collections::HashMap;
use std::mem::{offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

use tgtkit_srp::login::*;
use tgtkit_srp::logout::*;

fn srp_h() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/src")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.starts_with("linux-headers-") && n.ends_with("-common")
        })
        .map(|p| p.join("include/scsi/srp.h"))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "no /usr/src/linux-headers-*-common/include/scsi/srp.h: \
             run scripts/deps-srp.sh"
        )
    })
}

fn c_layout() -> HashMap<String, i64> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c");
    let exe = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("srp_layout");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(cc)
        .arg("-Wall")
        .arg("-I")
        .arg(dir.join("shim"))
        .arg(format!("-DSRP_H=\"{}\"", srp_h().display()))
        .arg(dir.join("srp_layout.c"))
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("run the C compiler");
    assert!(status.success(), "compiling tests/c/srp_layout.c failed");
    let out = Command::new(&exe).output().expect("run srp_layout");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

#[test]
fn login_layouts_match_srp_h() {
    let c = c_layout();
    let mut bad = Vec::new();
    let mut eq = |key: &str, ours: usize| {
        let theirs = *c.get(key).unwrap_or_else(|| panic!("{key} not printed"));
        if theirs != ours as i64 {
            bad.push(format!("{key}: C {theirs}, ours {ours}"));
        }
    };
    eq("sizeof.srp_login_req", size_of::<LoginReq>());
    eq("srp_login_req.tag", offset_of!(LoginReq, tag));
    eq(
        "srp_login_req.req_it_iu_len",
        offset_of!(LoginReq, req_it_iu_len),
    );
    eq(
        "srp_login_req.req_buf_fmt",
        offset_of!(LoginReq, req_buf_fmt),
    );
    eq("srp_login_req.req_flags", offset_of!(LoginReq, req_flags));
    eq(
        "srp_login_req.imm_data_offset",
        offset_of!(LoginReq, imm_data_offset),
    );
    eq(
        "srp_login_req.initiator_port_id",
        offset_of!(LoginReq, initiator_port_id),
    );
    eq(
        "srp_login_req.target_port_id",
        offset_of!(LoginReq, target_port_id),
    );
    eq("sizeof.srp_login_rsp", size_of::<LoginRsp>());
    eq(
        "srp_login_rsp.req_lim_delta",
        offset_of!(LoginRsp, req_lim_delta),
    );
    eq("srp_login_rsp.tag", offset_of!(LoginRsp, tag));
    eq(
        "srp_login_rsp.max_it_iu_len",
        offset_of!(LoginRsp, max_it_iu_len),
    );
    eq(
        "srp_login_rsp.max_ti_iu_len",
        offset_of!(LoginRsp, max_ti_iu_len),
    );
    eq("srp_login_rsp.buf_fmt", offset_of!(LoginRsp, buf_fmt));
    eq("srp_login_rsp.rsp_flags", offset_of!(LoginRsp, rsp_flags));
    eq("sizeof.srp_login_rej", size_of::<LoginRej>());
    eq("srp_login_rej.reason", offset_of!(LoginRej, reason));
    eq("srp_login_rej.tag", offset_of!(LoginRej, tag));
    eq("srp_login_rej.buf_fmt", offset_of!(LoginRej, buf_fmt));
    eq("SRP_LOGIN_REQ", OP_LOGIN_REQ.into());
    eq("SRP_LOGIN_RSP", OP_LOGIN_RSP.into());
    eq("SRP_LOGIN_REJ", OP_LOGIN_REJ.into());
    eq("sizeof.srp_i_logout", size_of::<ILogout>());
    eq("srp_i_logout.tag", offset_of!(ILogout, tag));
    eq("sizeof.srp_t_logout", size_of::<TLogout>());
    eq("srp_t_logout.sol_not", offset_of!(TLogout, sol_not));
    eq("srp_t_logout.reason", offset_of!(TLogout, reason));
    eq("srp_t_logout.tag", offset_of!(TLogout, tag));
    eq("SRP_I_LOGOUT", OP_I_LOGOUT.into());
    eq("SRP_T_LOGOUT", OP_T_LOGOUT.into());
    for (key, r) in [
        (
            "UNABLE_ESTABLISH_CHANNEL",
            RejectReason::UNABLE_TO_ESTABLISH,
        ),
        (
            "INSUFFICIENT_RESOURCES",
            RejectReason::INSUFFICIENT_RESOURCES,
        ),
        (
            "REQ_IT_IU_LENGTH_TOO_LARGE",
            RejectReason::REQ_IT_IU_LENGTH_TOO_LARGE,
        ),
        (
            "UNABLE_ASSOCIATE_CHANNEL",
            RejectReason::UNABLE_TO_ASSOCIATE,
        ),
        (
            "UNSUPPORTED_DESCRIPTOR_FMT",
            RejectReason::UNSUPPORTED_DESCRIPTOR_FORMAT,
        ),
        (
            "MULTI_CHANNEL_UNSUPPORTED",
            RejectReason::MULTICHANNEL_UNSUPPORTED,
        ),
        ("CHANNEL_LIMIT_REACHED", RejectReason::CHANNEL_LIMIT_REACHED),
    ] {
        eq(&format!("SRP_LOGIN_REJ_{key}"), r.0 as usize);
    }
    assert!(bad.is_empty(), "layout mismatches:\n{}", bad.join("\n"));
}
