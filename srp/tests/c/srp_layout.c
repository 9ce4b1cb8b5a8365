/* Prints sizeof/offsetof of every IU of the kernel's scsi/srp.h
 * (passed as SRP_H), with a userspace shim for its kernel includes. */
#include <stddef.h>
#include <stdio.h>
#include SRP_H

#define P(name, v) printf("%s %ld\n", name, (long)(v))
#define SZ(t) P("sizeof." #t, sizeof(struct t))
#define OFF(t, f) P(#t "." #f, offsetof(struct t, f))

int main(void)
{
    SZ(srp_login_req);
    OFF(srp_login_req, tag);
    OFF(srp_login_req, req_it_iu_len);
    OFF(srp_login_req, req_buf_fmt);
    OFF(srp_login_req, req_flags);
    OFF(srp_login_req, imm_data_offset);
    OFF(srp_login_req, initiator_port_id);
    OFF(srp_login_req, target_port_id);
    SZ(srp_login_rsp);
    OFF(srp_login_rsp, req_lim_delta);
    OFF(srp_login_rsp, tag);
    OFF(srp_login_rsp, max_it_iu_len);
    OFF(srp_login_rsp, max_ti_iu_len);
    OFF(srp_login_rsp, buf_fmt);
    OFF(srp_login_rsp, rsp_flags);
    SZ(srp_login_rej);
    OFF(srp_login_rej, reason);
    OFF(srp_login_rej, tag);
    OFF(srp_login_rej, buf_fmt);
    P("SRP_LOGIN_REQ", SRP_LOGIN_REQ);
    P("SRP_LOGIN_RSP", SRP_LOGIN_RSP);
    P("SRP_LOGIN_REJ", SRP_LOGIN_REJ);
    P("SRP_LOGIN_REJ_UNABLE_ESTABLISH_CHANNEL", SRP_LOGIN_REJ_UNABLE_ESTABLISH_CHANNEL);
    P("SRP_LOGIN_REJ_INSUFFICIENT_RESOURCES", SRP_LOGIN_REJ_INSUFFICIENT_RESOURCES);
    P("SRP_LOGIN_REJ_REQ_IT_IU_LENGTH_TOO_LARGE", SRP_LOGIN_REJ_REQ_IT_IU_LENGTH_TOO_LARGE);
    P("SRP_LOGIN_REJ_UNABLE_ASSOCIATE_CHANNEL", SRP_LOGIN_REJ_UNABLE_ASSOCIATE_CHANNEL);
    P("SRP_LOGIN_REJ_UNSUPPORTED_DESCRIPTOR_FMT", SRP_LOGIN_REJ_UNSUPPORTED_DESCRIPTOR_FMT);
    P("SRP_LOGIN_REJ_MULTI_CHANNEL_UNSUPPORTED", SRP_LOGIN_REJ_MULTI_CHANNEL_UNSUPPORTED);
    P("SRP_LOGIN_REJ_CHANNEL_LIMIT_REACHED", SRP_LOGIN_REJ_CHANNEL_LIMIT_REACHED);
    SZ(srp_i_logout);
    OFF(srp_i_logout, tag);
    SZ(srp_t_logout);
    OFF(srp_t_logout, sol_not);
    OFF(srp_t_logout, reason);
    OFF(srp_t_logout, tag);
    P("SRP_I_LOGOUT", SRP_I_LOGOUT);
    P("SRP_T_LOGOUT", SRP_T_LOGOUT);
    SZ(srp_direct_buf);
    OFF(srp_direct_buf, key);
    OFF(srp_direct_buf, len);
    SZ(srp_indirect_buf);
    OFF(srp_indirect_buf, len);
    OFF(srp_indirect_buf, desc_list);
    SZ(srp_imm_buf);
    SZ(srp_tsk_mgmt);
    OFF(srp_tsk_mgmt, tag);
    OFF(srp_tsk_mgmt, lun);
    OFF(srp_tsk_mgmt, tsk_mgmt_func);
    OFF(srp_tsk_mgmt, task_tag);
    SZ(srp_cmd);
    OFF(srp_cmd, buf_fmt);
    OFF(srp_cmd, data_out_desc_cnt);
    OFF(srp_cmd, data_in_desc_cnt);
    OFF(srp_cmd, tag);
    OFF(srp_cmd, lun);
    OFF(srp_cmd, task_attr);
    OFF(srp_cmd, add_cdb_len);
    OFF(srp_cmd, cdb);
    OFF(srp_cmd, add_data);
    SZ(srp_rsp);
    OFF(srp_rsp, req_lim_delta);
    OFF(srp_rsp, tag);
    OFF(srp_rsp, flags);
    OFF(srp_rsp, status);
    OFF(srp_rsp, data_out_res_cnt);
    OFF(srp_rsp, data_in_res_cnt);
    OFF(srp_rsp, sense_data_len);
    OFF(srp_rsp, resp_data_len);
    OFF(srp_rsp, data);
    SZ(srp_cred_req);
    OFF(srp_cred_req, req_lim_delta);
    OFF(srp_cred_req, tag);
    SZ(srp_cred_rsp);
    OFF(srp_cred_rsp, tag);
    SZ(srp_aer_req);
    OFF(srp_aer_req, req_lim_delta);
    OFF(srp_aer_req, tag);
    OFF(srp_aer_req, lun);
    OFF(srp_aer_req, sense_data_len);
    OFF(srp_aer_req, sense_data);
    SZ(srp_aer_rsp);
    OFF(srp_aer_rsp, tag);
    P("SRP_TSK_MGMT", SRP_TSK_MGMT);
    P("SRP_CMD", SRP_CMD);
    P("SRP_RSP", SRP_RSP);
    P("SRP_CRED_REQ", SRP_CRED_REQ);
    P("SRP_CRED_RSP", SRP_CRED_RSP);
    P("SRP_AER_REQ", SRP_AER_REQ);
    P("SRP_AER_RSP", SRP_AER_RSP);
    P("SRP_RSP_FLAG_RSPVALID", SRP_RSP_FLAG_RSPVALID);
    P("SRP_RSP_FLAG_SNSVALID", SRP_RSP_FLAG_SNSVALID);
    P("SRP_RSP_FLAG_DOOVER", SRP_RSP_FLAG_DOOVER);
    P("SRP_RSP_FLAG_DOUNDER", SRP_RSP_FLAG_DOUNDER);
    P("SRP_RSP_FLAG_DIOVER", SRP_RSP_FLAG_DIOVER);
    P("SRP_RSP_FLAG_DIUNDER", SRP_RSP_FLAG_DIUNDER);
    P("SRP_TSK_ABORT_TASK", SRP_TSK_ABORT_TASK);
    P("SRP_TSK_ABORT_TASK_SET", SRP_TSK_ABORT_TASK_SET);
    P("SRP_TSK_CLEAR_TASK_SET", SRP_TSK_CLEAR_TASK_SET);
    P("SRP_TSK_LUN_RESET", SRP_TSK_LUN_RESET);
    P("SRP_TSK_CLEAR_ACA", SRP_TSK_CLEAR_ACA);
    P("SRP_DATA_DESC_DIRECT", SRP_DATA_DESC_DIRECT);
    P("SRP_DATA_DESC_INDIRECT", SRP_DATA_DESC_INDIRECT);
    P("SRP_DATA_DESC_IMM", SRP_DATA_DESC_IMM);
    P("SRP_BUF_FORMAT_DIRECT", SRP_BUF_FORMAT_DIRECT);
    P("SRP_BUF_FORMAT_INDIRECT", SRP_BUF_FORMAT_INDIRECT);
    return 0;
}
