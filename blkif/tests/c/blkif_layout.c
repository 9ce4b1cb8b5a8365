/* Prints sizeof/offsetof of every io/blkif.h and io/ring.h structure field,
 * as the compiler lays out the real Xen headers (build natively and -m32). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <xen/io/blkif.h>
#include <xen/io/protocols.h>

#define P(name, v) printf("%s %ld\n", name, (long)(v))
#define SZ(t) P("sizeof." #t, sizeof(struct t))
#define OFF(t, f) P(#t "." #f, offsetof(struct t, f))

int main(void)
{
    OFF(blkif_sring, req_prod);
    OFF(blkif_sring, req_event);
    OFF(blkif_sring, rsp_prod);
    OFF(blkif_sring, rsp_event);
    OFF(blkif_sring, pvt);
    OFF(blkif_sring, __pad);
    OFF(blkif_sring, ring);
    P("sizeof.blkif_sring_entry", sizeof(union blkif_sring_entry));
    P("ring_size.1", __CONST_RING_SIZE(blkif, 4096));
    P("ring_size.2", __CONST_RING_SIZE(blkif, 2 * 4096));
    P("ring_size.4", __CONST_RING_SIZE(blkif, 4 * 4096));
    P("ring_size.16", __CONST_RING_SIZE(blkif, 16 * 4096));

    SZ(blkif_request_segment);
    OFF(blkif_request_segment, gref);
    OFF(blkif_request_segment, first_sect);
    OFF(blkif_request_segment, last_sect);

    SZ(blkif_request);
    OFF(blkif_request, operation);
    OFF(blkif_request, nr_segments);
    OFF(blkif_request, handle);
    OFF(blkif_request, id);
    OFF(blkif_request, sector_number);
    OFF(blkif_request, seg);

    SZ(blkif_request_discard);
    OFF(blkif_request_discard, operation);
    OFF(blkif_request_discard, flag);
    OFF(blkif_request_discard, handle);
    OFF(blkif_request_discard, id);
    OFF(blkif_request_discard, sector_number);
    OFF(blkif_request_discard, nr_sectors);

    SZ(blkif_request_indirect);
    OFF(blkif_request_indirect, operation);
    OFF(blkif_request_indirect, indirect_op);
    OFF(blkif_request_indirect, nr_segments);
    OFF(blkif_request_indirect, id);
    OFF(blkif_request_indirect, sector_number);
    OFF(blkif_request_indirect, handle);
    OFF(blkif_request_indirect, indirect_grefs);

    SZ(blkif_response);
    OFF(blkif_response, id);
    OFF(blkif_response, operation);
    OFF(blkif_response, status);

    P("BLKIF_OP_READ", BLKIF_OP_READ);
    P("BLKIF_OP_WRITE", BLKIF_OP_WRITE);
    P("BLKIF_OP_WRITE_BARRIER", BLKIF_OP_WRITE_BARRIER);
    P("BLKIF_OP_FLUSH_DISKCACHE", BLKIF_OP_FLUSH_DISKCACHE);
    P("BLKIF_OP_RESERVED_1", BLKIF_OP_RESERVED_1);
    P("BLKIF_OP_DISCARD", BLKIF_OP_DISCARD);
    P("BLKIF_OP_INDIRECT", BLKIF_OP_INDIRECT);
    P("BLKIF_MAX_SEGMENTS_PER_REQUEST", BLKIF_MAX_SEGMENTS_PER_REQUEST);
    P("BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST", BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST);
    P("BLKIF_DISCARD_SECURE", BLKIF_DISCARD_SECURE);
    P("BLKIF_RSP_OKAY", BLKIF_RSP_OKAY);
    P("BLKIF_RSP_ERROR", BLKIF_RSP_ERROR);
    P("BLKIF_RSP_EOPNOTSUPP", BLKIF_RSP_EOPNOTSUPP);
    printf("protocol.x86_32 %s\n", XEN_IO_PROTO_ABI_X86_32);
    printf("protocol.x86_64 %s\n", XEN_IO_PROTO_ABI_X86_64);
    printf("protocol.native %s\n", XEN_IO_PROTO_ABI_NATIVE);
    return 0;
}
