//! Our login IU layouts against the kernel's `include/scsi/srp.h`
//! (Debian linux-headers-*-common, installed by scripts/deps-srp.sh).
//! A missing header FAILS this test.

use std::collections::HashMap;
use std::mem::{offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

use tgtkit_srp::aer::*;
use tgtkit_srp::cmd::*;
use tgtkit_srp::cred::*;
use tgtkit_srp::desc::*;
use tgtkit_srp::login::*;
use tgtkit_srp::logout::*;
use tgtkit_srp::rsp::*;
use tgtkit_srp::tsk_mgmt::*;

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

/// The C program's output, built and run once for every test.
fn c_layout() -> HashMap<String, i64> {
    static LAYOUT: std::sync::OnceLock<HashMap<String, i64>> = std::sync::OnceLock::new();
    LAYOUT.get_or_init(build_and_run).clone()
}

fn build_and_run() -> HashMap<String, i64> {
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

/// The C layout, and the mismatches our layout has with it.
struct Layout {
    c: std::collections::HashMap<String, i64>,
    bad: Vec<String>,
}

impl Layout {
    fn of_c() -> Self {
        Self {
            c: c_layout(),
            bad: Vec::new(),
        }
    }

    /// Compare the C value printed as `key` with ours.
    fn eq(&mut self, key: &str, ours: usize) {
        let theirs = *self
            .c
            .get(key)
            .unwrap_or_else(|| panic!("{key} not printed"));
        if theirs != ours as i64 {
            self.bad.push(format!("{key}: C {theirs}, ours {ours}"));
        }
    }

    fn assert_matches(&self) {
        assert!(
            self.bad.is_empty(),
            "layout mismatches:\n{}",
            self.bad.join("\n")
        );
    }
}

#[test]
fn login_layouts_match_srp_h() {
    let mut check = Layout::of_c();
    let mut eq = |key: &str, ours: usize| check.eq(key, ours);
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
    check.assert_matches();
}

#[test]
fn command_response_and_event_layouts_match_srp_h() {
    let mut check = Layout::of_c();
    let mut eq = |key: &str, ours: usize| check.eq(key, ours);
    eq("sizeof.srp_direct_buf", size_of::<DirectBuf>());
    eq("srp_direct_buf.key", offset_of!(DirectBuf, key));
    eq("srp_direct_buf.len", offset_of!(DirectBuf, len));
    eq("sizeof.srp_indirect_buf", INDIRECT_LEN);
    eq("srp_indirect_buf.len", DIRECT_LEN);
    eq("srp_indirect_buf.desc_list", INDIRECT_LEN);
    eq("sizeof.srp_imm_buf", IMM_LEN);
    eq("sizeof.srp_tsk_mgmt", size_of::<TskMgmt>());
    eq("srp_tsk_mgmt.tag", offset_of!(TskMgmt, tag));
    eq("srp_tsk_mgmt.lun", offset_of!(TskMgmt, lun));
    eq(
        "srp_tsk_mgmt.tsk_mgmt_func",
        offset_of!(TskMgmt, tsk_mgmt_func),
    );
    eq("srp_tsk_mgmt.task_tag", offset_of!(TskMgmt, task_tag));
    eq("sizeof.srp_cmd", size_of::<CmdHeader>());
    eq("srp_cmd.buf_fmt", offset_of!(CmdHeader, buf_fmt));
    eq(
        "srp_cmd.data_out_desc_cnt",
        offset_of!(CmdHeader, data_out_desc_cnt),
    );
    eq(
        "srp_cmd.data_in_desc_cnt",
        offset_of!(CmdHeader, data_in_desc_cnt),
    );
    eq("srp_cmd.tag", offset_of!(CmdHeader, tag));
    eq("srp_cmd.lun", offset_of!(CmdHeader, lun));
    eq("srp_cmd.task_attr", offset_of!(CmdHeader, task_attr));
    eq("srp_cmd.add_cdb_len", offset_of!(CmdHeader, add_cdb_len));
    eq("srp_cmd.cdb", offset_of!(CmdHeader, cdb));
    eq("srp_cmd.add_data", CMD_LEN);
    eq("sizeof.srp_rsp", size_of::<RspHeader>());
    eq(
        "srp_rsp.req_lim_delta",
        offset_of!(RspHeader, req_lim_delta),
    );
    eq("srp_rsp.tag", offset_of!(RspHeader, tag));
    eq("srp_rsp.flags", offset_of!(RspHeader, flags));
    eq("srp_rsp.status", offset_of!(RspHeader, status));
    eq(
        "srp_rsp.data_out_res_cnt",
        offset_of!(RspHeader, data_out_res_cnt),
    );
    eq(
        "srp_rsp.data_in_res_cnt",
        offset_of!(RspHeader, data_in_res_cnt),
    );
    eq(
        "srp_rsp.sense_data_len",
        offset_of!(RspHeader, sense_data_len),
    );
    eq(
        "srp_rsp.resp_data_len",
        offset_of!(RspHeader, resp_data_len),
    );
    eq("srp_rsp.data", RSP_LEN);
    eq("sizeof.srp_cred_req", size_of::<CredReq>());
    eq(
        "srp_cred_req.req_lim_delta",
        offset_of!(CredReq, req_lim_delta),
    );
    eq("srp_cred_req.tag", offset_of!(CredReq, tag));
    eq("sizeof.srp_cred_rsp", size_of::<CredRsp>());
    eq("srp_cred_rsp.tag", offset_of!(CredRsp, tag));
    eq("sizeof.srp_aer_req", size_of::<AerReqHeader>());
    eq(
        "srp_aer_req.req_lim_delta",
        offset_of!(AerReqHeader, req_lim_delta),
    );
    eq("srp_aer_req.tag", offset_of!(AerReqHeader, tag));
    eq("srp_aer_req.lun", offset_of!(AerReqHeader, lun));
    eq(
        "srp_aer_req.sense_data_len",
        offset_of!(AerReqHeader, sense_data_len),
    );
    eq("srp_aer_req.sense_data", AER_REQ_LEN);
    eq("sizeof.srp_aer_rsp", size_of::<AerRsp>());
    eq("srp_aer_rsp.tag", offset_of!(AerRsp, tag));
    for (key, op) in [
        ("SRP_TSK_MGMT", OP_TSK_MGMT),
        ("SRP_CMD", OP_CMD),
        ("SRP_RSP", OP_RSP),
        ("SRP_CRED_REQ", OP_CRED_REQ),
        ("SRP_CRED_RSP", OP_CRED_RSP),
        ("SRP_AER_REQ", OP_AER_REQ),
        ("SRP_AER_RSP", OP_AER_RSP),
        ("SRP_RSP_FLAG_RSPVALID", FLAG_RSPVALID),
        ("SRP_RSP_FLAG_SNSVALID", FLAG_SNSVALID),
        ("SRP_RSP_FLAG_DOOVER", FLAG_DOOVER),
        ("SRP_RSP_FLAG_DOUNDER", FLAG_DOUNDER),
        ("SRP_RSP_FLAG_DIOVER", FLAG_DIOVER),
        ("SRP_RSP_FLAG_DIUNDER", FLAG_DIUNDER),
        ("SRP_TSK_ABORT_TASK", TaskFunction::ABORT_TASK.0),
        ("SRP_TSK_ABORT_TASK_SET", TaskFunction::ABORT_TASK_SET.0),
        ("SRP_TSK_CLEAR_TASK_SET", TaskFunction::CLEAR_TASK_SET.0),
        ("SRP_TSK_LUN_RESET", TaskFunction::LUN_RESET.0),
        ("SRP_TSK_CLEAR_ACA", TaskFunction::CLEAR_ACA.0),
        ("SRP_DATA_DESC_DIRECT", DescFormat::Direct.code()),
        ("SRP_DATA_DESC_INDIRECT", DescFormat::Indirect.code()),
        ("SRP_DATA_DESC_IMM", DescFormat::Immediate.code()),
    ] {
        eq(key, op.into());
    }
    eq("SRP_BUF_FORMAT_DIRECT", BUF_FORMAT_DIRECT.into());
    eq("SRP_BUF_FORMAT_INDIRECT", BUF_FORMAT_INDIRECT.into());
    check.assert_matches();
}
