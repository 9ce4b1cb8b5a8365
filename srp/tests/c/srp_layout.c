/* Prints sizeof/offsetof of the login IUs of the kernel's scsi/srp.h
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
    return 0;
}
