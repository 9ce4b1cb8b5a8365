/* sizeof/offsetof of io/vscsiif.h as the compiler lays out the real header. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <xen/io/vscsiif.h>

#define P(name, v) printf("%s %ld\n", name, (long)(v))
#define SZ(t) P("sizeof." #t, sizeof(struct t))
#define OFF(t, f) P(#t "." #f, offsetof(struct t, f))

int main(void)
{
    OFF(vscsiif_sring, req_prod);
    OFF(vscsiif_sring, req_event);
    OFF(vscsiif_sring, rsp_prod);
    OFF(vscsiif_sring, rsp_event);
    OFF(vscsiif_sring, pvt);
    OFF(vscsiif_sring, __pad);
    OFF(vscsiif_sring, ring);
    P("sizeof.vscsiif_sring_entry", sizeof(union vscsiif_sring_entry));
    P("ring_size.1", __CONST_RING_SIZE(vscsiif, 4096));
    SZ(scsiif_request_segment);
    OFF(scsiif_request_segment, gref);
    OFF(scsiif_request_segment, offset);
    OFF(scsiif_request_segment, length);
    SZ(vscsiif_request);
    OFF(vscsiif_request, rqid);
    OFF(vscsiif_request, act);
    OFF(vscsiif_request, cmd_len);
    OFF(vscsiif_request, cmnd);
    OFF(vscsiif_request, timeout_per_command);
    OFF(vscsiif_request, channel);
    OFF(vscsiif_request, id);
    OFF(vscsiif_request, lun);
    OFF(vscsiif_request, ref_rqid);
    OFF(vscsiif_request, sc_data_direction);
    OFF(vscsiif_request, nr_segments);
    OFF(vscsiif_request, seg);
    OFF(vscsiif_request, reserved);
    SZ(vscsiif_response);
    OFF(vscsiif_response, rqid);
    OFF(vscsiif_response, act);
    OFF(vscsiif_response, sense_len);
    OFF(vscsiif_response, sense_buffer);
    OFF(vscsiif_response, rslt);
    OFF(vscsiif_response, residual_len);
    OFF(vscsiif_response, reserved);
    P("VSCSIIF_ACT_SCSI_CDB", VSCSIIF_ACT_SCSI_CDB);
    P("VSCSIIF_ACT_SCSI_ABORT", VSCSIIF_ACT_SCSI_ABORT);
    P("VSCSIIF_ACT_SCSI_RESET", VSCSIIF_ACT_SCSI_RESET);
    P("VSCSIIF_ACT_SCSI_SG_PRESET", VSCSIIF_ACT_SCSI_SG_PRESET);
    P("VSCSIIF_SG_TABLESIZE", VSCSIIF_SG_TABLESIZE);
    P("VSCSIIF_MAX_COMMAND_SIZE", VSCSIIF_MAX_COMMAND_SIZE);
    P("VSCSIIF_SENSE_BUFFERSIZE", VSCSIIF_SENSE_BUFFERSIZE);
    P("VSCSIIF_SG_PER_PAGE", VSCSIIF_SG_PER_PAGE);
    P("VSCSIIF_SG_GRANT", VSCSIIF_SG_GRANT);
    P("RSLT_RESET_SUCCESS", XEN_VSCSIIF_RSLT_RESET_SUCCESS);
    P("RSLT_RESET_FAILED", XEN_VSCSIIF_RSLT_RESET_FAILED);
    P("RSLT_HOST_NO_CONNECT", XEN_VSCSIIF_RSLT_HOST_NO_CONNECT);
    P("RSLT_HOST_ABORT", XEN_VSCSIIF_RSLT_HOST_ABORT);
    P("RSLT_HOST_ERROR", XEN_VSCSIIF_RSLT_HOST_ERROR);
    P("RSLT_HOST_OF_0x070002", XEN_VSCSIIF_RSLT_HOST(0x070002));
    P("RSLT_STATUS_OF_0x070002", XEN_VSCSIIF_RSLT_STATUS(0x070002));
    return 0;
}
