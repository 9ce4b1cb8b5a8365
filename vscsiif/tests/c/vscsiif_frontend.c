/* A vscsiif frontend written with the real io/ring.h macros, driving a
 * backend in another process over a shared file (ring page, then "granted"
 * pages: grant ref g is page 1 + g, then a control page). It sends TEST UNIT
 * READY, INQUIRY, READ CAPACITY(10), then thousands of WRITE(10)/READ(10)
 * over scattered segments with NSLOT commands in flight, checking every read
 * against a shadow copy of the disk.
 *
 * usage: vscsiif_frontend FILE GRANT_PAGES DISK_BLOCKS NREQ SEED
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define mb()  __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#include <xen/io/vscsiif.h>

#define PAGE 4096
#define NSLOT 8
#define PAGES_PER_SLOT 24
#define MAGIC 0x58454e21u
#define DMA_TO_DEVICE 1
#define DMA_FROM_DEVICE 2
#define DMA_NONE 3

struct piece { uint32_t gref; uint16_t off, len; };
struct pending {
    int busy, write, kind; /* kind 0 rw, 1 inquiry */
    uint16_t rqid;
    uint32_t lba, blocks;
    int npieces;
    struct piece p[VSCSIIF_SG_TABLESIZE];
};

static uint8_t *base;
static unsigned grant_pages;
static uint32_t disk_blocks, region;
static uint8_t *shadow;
static struct pending slots[NSLOT];
static uint64_t rng;
static vscsiif_front_ring_t front;
static vscsiif_sring_t *sring;
static double deadline;

static uint64_t rnd(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }
static uint8_t *gpage(uint32_t g) { return base + (size_t)(1 + g) * PAGE; }
static void die(const char *m, long a, long b) { fprintf(stderr, "FAIL: %s (%ld, %ld)\n", m, a, b); exit(1); }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

static vscsiif_request_t *new_req(uint16_t rqid, const uint8_t *cdb, int len, int dir)
{
    vscsiif_request_t *r = RING_GET_REQUEST(&front, front.req_prod_pvt);
    memset(r, 0, sizeof(*r));
    r->rqid = rqid;
    r->act = VSCSIIF_ACT_SCSI_CDB;
    r->cmd_len = len;
    memcpy(r->cmnd, cdb, len);
    r->channel = 0; r->id = 1; r->lun = 0;
    r->sc_data_direction = dir;
    return r;
}

static void push(void)
{
    int notify;
    front.req_prod_pvt++;
    RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&front, notify);
    (void)notify;
}

/* Wait for one response (synchronous commands before the workload). */
static vscsiif_response_t wait_one(void)
{
    for (;;) {
        RING_IDX rp = sring->rsp_prod;
        rmb();
        if (rp != front.rsp_cons) {
            vscsiif_response_t rsp;
            RING_COPY_RESPONSE(&front, front.rsp_cons, &rsp);
            front.rsp_cons++;
            return rsp;
        }
        if (now() > deadline) die("timed out", 0, 0);
        sched_yield();
    }
}

static void sync_cmds(void)
{
    uint8_t tur[6] = {0};
    int good = 0;
    for (int i = 0; i < 4 && !good; i++) {
        new_req(1000 + i, tur, 6, DMA_NONE);
        push();
        vscsiif_response_t r = wait_one();
        good = r.rslt == 0;
        if (!good && (XEN_VSCSIIF_RSLT_STATUS(r.rslt) != 2 || (r.sense_buffer[2] & 0xf) != 6))
            die("TEST UNIT READY: not GOOD nor UNIT ATTENTION", r.rslt, r.sense_buffer[2]);
    }
    if (!good) die("unit attention does not clear", 0, 0);

    uint8_t inq[6] = {0x12, 0, 0, 0, 96, 0};
    vscsiif_request_t *r = new_req(2000, inq, 6, DMA_FROM_DEVICE);
    r->nr_segments = 1;
    r->seg[0].gref = 0; r->seg[0].offset = 200; r->seg[0].length = 96;
    push();
    vscsiif_response_t rs = wait_one();
    uint8_t *d = gpage(0) + 200;
    if (rs.rqid != 2000 || rs.rslt != 0) die("INQUIRY failed", rs.rqid, rs.rslt);
    if ((d[0] & 0x1f) != 0) die("INQUIRY: not a disk", d[0], 0);
    if (rs.residual_len != (uint32_t)(96 - (d[4] + 5 < 96 ? d[4] + 5 : 96))) die("INQUIRY residual", rs.residual_len, d[4]);
    printf("inquiry %.8s %.16s\n", d + 8, d + 16);

    uint8_t rc[10] = {0x25};
    r = new_req(2001, rc, 10, DMA_FROM_DEVICE);
    r->nr_segments = 1;
    r->seg[0].gref = 1; r->seg[0].offset = 4088; r->seg[0].length = 8;
    push();
    rs = wait_one();
    d = gpage(1) + 4088;
    uint32_t last = (uint32_t)d[0] << 24 | d[1] << 16 | d[2] << 8 | d[3];
    uint32_t bl = (uint32_t)d[4] << 24 | d[5] << 16 | d[6] << 8 | d[7];
    if (rs.rslt != 0 || last != disk_blocks - 1 || bl != 512) die("READ CAPACITY", last, bl);
}

static void issue(int k, uint16_t rqid)
{
    struct pending *p = &slots[k];
    memset(p, 0, sizeof(*p));
    p->busy = 1;
    p->rqid = rqid;
    if (rnd() % 50 == 0) {
        uint8_t inq[6] = {0x12, 0, 0, 0, 36, 0};
        p->kind = 1;
        vscsiif_request_t *r = new_req(rqid, inq, 6, DMA_FROM_DEVICE);
        r->nr_segments = 1;
        r->seg[0].gref = k * PAGES_PER_SLOT; r->seg[0].offset = 0; r->seg[0].length = 36;
        front.req_prod_pvt++;
        return;
    }
    p->write = rnd() % 2;
    p->blocks = 1 + rnd() % 16;
    p->lba = k * region + rnd() % (region - p->blocks + 1);
    uint32_t total = p->blocks * 512, at = 0;
    while (at < total) {
        uint32_t left = total - at;
        uint32_t len = 400 + rnd() % (4096 - 400 + 1);
        if (len > left) len = left;
        uint16_t off = rnd() % (4096 - len + 1);
        struct piece *pc = &p->p[p->npieces];
        pc->gref = k * PAGES_PER_SLOT + p->npieces;
        pc->off = off;
        pc->len = len;
        if (p->write) {
            for (uint32_t i = 0; i < len; i++) gpage(pc->gref)[off + i] = (uint8_t)rnd();
        } else {
            memset(gpage(pc->gref) + off, 0xEE, len);
        }
        p->npieces++;
        at += len;
    }
    uint8_t cdb[10] = {p->write ? 0x2a : 0x28, 0, p->lba >> 24, p->lba >> 16, p->lba >> 8, p->lba, 0, 0, p->blocks, 0};
    vscsiif_request_t *r = new_req(rqid, cdb, 10, p->write ? DMA_TO_DEVICE : DMA_FROM_DEVICE);
    r->nr_segments = p->npieces;
    for (int i = 0; i < p->npieces; i++) {
        r->seg[i].gref = p->p[i].gref;
        r->seg[i].offset = p->p[i].off;
        r->seg[i].length = p->p[i].len;
    }
    front.req_prod_pvt++;
}

static void complete(vscsiif_response_t *rs, uint64_t *done)
{
    int k = rs->rqid % NSLOT;
    struct pending *p = &slots[k];
    if (!p->busy || p->rqid != rs->rqid) die("response for unknown rqid", rs->rqid, k);
    if (rs->rslt != 0 || rs->residual_len != 0) die("command failed", rs->rqid, rs->rslt);
    if (p->kind == 0) {
        uint64_t at = (uint64_t)p->lba * 512;
        for (int i = 0; i < p->npieces; i++) {
            uint8_t *src = gpage(p->p[i].gref) + p->p[i].off;
            if (p->write) memcpy(shadow + at, src, p->p[i].len);
            else if (memcmp(shadow + at, src, p->p[i].len)) die("READ data differs", rs->rqid, i);
            at += p->p[i].len;
        }
    } else if ((gpage(k * PAGES_PER_SLOT)[0] & 0x1f) != 0) {
        die("INQUIRY data", rs->rqid, 0);
    }
    p->busy = 0;
    (*done)++;
}

int main(int argc, char **argv)
{
    if (argc != 6) { fprintf(stderr, "usage\n"); return 2; }
    grant_pages = atoi(argv[2]);
    disk_blocks = strtoul(argv[3], 0, 0);
    uint64_t nreq = strtoull(argv[4], 0, 0);
    rng = strtoull(argv[5], 0, 0) | 1;
    region = disk_blocks / NSLOT;
    if (grant_pages < NSLOT * PAGES_PER_SLOT) die("too few grant pages", grant_pages, 0);
    size_t len = (size_t)(1 + grant_pages + 1) * PAGE;
    int fd = open(argv[1], O_RDWR);
    if (fd < 0) die("open", errno, 0);
    base = mmap(0, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) die("mmap", errno, 0);
    shadow = calloc(disk_blocks, 512);
    sring = (vscsiif_sring_t *)base;
    SHARED_RING_INIT(sring);
    FRONT_RING_INIT(&front, sring, PAGE);
    volatile uint32_t *ctl = (volatile uint32_t *)(base + (size_t)(1 + grant_pages) * PAGE);
    mb();
    ctl[0] = MAGIC;
    deadline = now() + 120;

    sync_cmds();
    uint64_t issued = 0, done = 0;
    uint16_t seq = 0;
    while (done < nreq) {
        int pushed = 0;
        for (int k = 0; k < NSLOT && issued < nreq; k++) {
            if (slots[k].busy || RING_FULL(&front)) continue;
            seq++;
            issue(k, (uint16_t)(seq * NSLOT + k));
            issued++;
            pushed++;
        }
        if (pushed) {
            int notify;
            RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&front, notify);
            (void)notify;
        }
        int more;
        do {
            RING_IDX rp = sring->rsp_prod;
            rmb();
            if (RING_RESPONSE_PROD_OVERFLOW(&front, rp)) die("response overflow", rp, front.rsp_cons);
            for (RING_IDX i = front.rsp_cons; i != rp; i++) {
                vscsiif_response_t rs;
                RING_COPY_RESPONSE(&front, i, &rs);
                complete(&rs, &done);
            }
            front.rsp_cons = rp;
            RING_FINAL_CHECK_FOR_RESPONSES(&front, more);
        } while (more);
        if (now() > deadline) die("timed out", (long)done, (long)nreq);
        sched_yield();
    }
    printf("ok %llu ring %u\n", (unsigned long long)done, RING_SIZE(&front));
    return 0;
}
