/* A blkif frontend written with the real io/ring.h macros, driving a
 * backend in another process over a shared file:
 *
 *   pages [0, ring_pages)                    the shared ring
 *   pages [ring_pages, ring_pages + grants)  "granted" pages: grant ref g
 *                                            is page ring_pages + g
 *   the last page                            control: magic, then results
 *
 * It keeps a shadow copy of the disk, keeps NSLOT requests in flight (slot
 * k only touches its own disk region, so its reads can be checked), and
 * sends ordinary, indirect, discard, flush, barrier and deliberately bad
 * requests. Exit status 0 and "ok <n>" on success.
 *
 * usage: blkif_frontend FILE RING_PAGES GRANT_PAGES DISK_SECTORS NREQ SEED MAX_INDIRECT
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

/* ring.h maps xen_mb() and friends to mb()/rmb()/wmb() for the default
 * interface version; give them their x86 meanings as C11 fences. */
#define mb()  __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#include <xen/io/blkif.h>

#define PAGE 4096
#define NSLOT 16
#define PAGES_PER_SLOT 66 /* 1 indirect page + 64 data pages + 1 spare */
#define MAGIC 0x58454e21u

enum kind { K_READ, K_WRITE, K_IND_READ, K_IND_WRITE, K_DISCARD, K_FLUSH, K_BARRIER, K_BAD };

struct seginfo { uint32_t gref; uint8_t first, last; };
struct pending {
    int busy;
    enum kind kind;
    uint64_t id;
    uint64_t sector;
    uint64_t nsect;
    int nseg;
    struct seginfo seg[64];
    int16_t expect;
};

static uint8_t *base;
static unsigned ring_pages, grant_pages;
static uint64_t disk_sectors, region;
static uint8_t *shadow;
static struct pending slots[NSLOT];
static uint64_t rng;
static unsigned max_indirect;

static uint64_t rnd(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }
static uint8_t *gpage(uint32_t g) { return base + (size_t)(ring_pages + g) * PAGE; }

static void die(const char *m, long a, long b)
{
    fprintf(stderr, "FAIL: %s (%ld, %ld)\n", m, a, b);
    exit(1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Fill segments for slot k covering nsect-aligned random sectors. */
static int make_segs(int k, struct pending *p, int nseg, int full_pages)
{
    uint64_t total = 0;
    for (int i = 0; i < nseg; i++) {
        uint8_t f = full_pages ? 0 : rnd() % 8;
        uint8_t l = full_pages ? 7 : f + rnd() % (8 - f);
        p->seg[i].gref = k * PAGES_PER_SLOT + 1 + i;
        p->seg[i].first = f;
        p->seg[i].last = l;
        total += l - f + 1;
    }
    p->nseg = nseg;
    p->nsect = total;
    if (total > region) return -1;
    p->sector = k * region + rnd() % (region - total + 1);
    return 0;
}

static void fill_write_data(struct pending *p)
{
    for (int i = 0; i < p->nseg; i++) {
        uint8_t *pg = gpage(p->seg[i].gref);
        for (int b = p->seg[i].first * 512; b < (p->seg[i].last + 1) * 512; b++)
            pg[b] = (uint8_t)rnd();
    }
}

static void on_write_done(struct pending *p)
{
    uint64_t at = p->sector * 512;
    for (int i = 0; i < p->nseg; i++) {
        uint8_t *pg = gpage(p->seg[i].gref);
        size_t n = (p->seg[i].last - p->seg[i].first + 1) * 512;
        memcpy(shadow + at, pg + p->seg[i].first * 512, n);
        at += n;
    }
}

static void check_read(struct pending *p)
{
    uint64_t at = p->sector * 512;
    for (int i = 0; i < p->nseg; i++) {
        uint8_t *pg = gpage(p->seg[i].gref);
        size_t n = (p->seg[i].last - p->seg[i].first + 1) * 512;
        if (memcmp(shadow + at, pg + p->seg[i].first * 512, n) != 0)
            die("read data differs from shadow", (long)p->id, i);
        at += n;
    }
}

static void issue(blkif_front_ring_t *front, int k, uint64_t seq)
{
    struct pending *p = &slots[k];
    memset(p, 0, sizeof(*p));
    p->busy = 1;
    p->id = seq * NSLOT + k;
    p->expect = BLKIF_RSP_OKAY;
    unsigned r = rnd() % 100;
    p->kind = r < 30 ? K_WRITE : r < 60 ? K_READ : r < 70 ? K_IND_WRITE : r < 80 ? K_IND_READ
            : r < 85 ? K_DISCARD : r < 90 ? K_FLUSH : r < 95 ? K_BARRIER : K_BAD;
    blkif_request_t *req = RING_GET_REQUEST(front, front->req_prod_pvt);
    memset(req, 0, sizeof(*req));
    switch (p->kind) {
    case K_WRITE: case K_READ: case K_BARRIER: {
        int nseg = 1 + rnd() % (p->kind == K_BARRIER ? 3 : BLKIF_MAX_SEGMENTS_PER_REQUEST);
        make_segs(k, p, nseg, 0);
        if (p->kind != K_READ) fill_write_data(p);
        req->operation = p->kind == K_READ ? BLKIF_OP_READ : p->kind == K_WRITE ? BLKIF_OP_WRITE : BLKIF_OP_WRITE_BARRIER;
        req->nr_segments = nseg;
        req->handle = 0;
        req->id = p->id;
        req->sector_number = p->sector;
        for (int i = 0; i < nseg; i++) {
            req->seg[i].gref = p->seg[i].gref;
            req->seg[i].first_sect = p->seg[i].first;
            req->seg[i].last_sect = p->seg[i].last;
        }
        break;
    }
    case K_IND_WRITE: case K_IND_READ: {
        blkif_request_indirect_t *ind = (blkif_request_indirect_t *)req;
        int nseg = 12 + rnd() % (max_indirect - 11);
        make_segs(k, p, nseg, rnd() % 2);
        if (p->kind == K_IND_WRITE) fill_write_data(p);
        struct blkif_request_segment *ip = (struct blkif_request_segment *)gpage(k * PAGES_PER_SLOT);
        for (int i = 0; i < nseg; i++) {
            ip[i].gref = p->seg[i].gref;
            ip[i].first_sect = p->seg[i].first;
            ip[i].last_sect = p->seg[i].last;
        }
        ind->operation = BLKIF_OP_INDIRECT;
        ind->indirect_op = p->kind == K_IND_READ ? BLKIF_OP_READ : BLKIF_OP_WRITE;
        ind->nr_segments = nseg;
        ind->id = p->id;
        ind->sector_number = p->sector;
        ind->handle = 0;
        ind->indirect_grefs[0] = k * PAGES_PER_SLOT;
        break;
    }
    case K_DISCARD: {
        blkif_request_discard_t *d = (blkif_request_discard_t *)req;
        p->nsect = 1 + rnd() % 64;
        p->sector = k * region + rnd() % (region - p->nsect + 1);
        d->operation = BLKIF_OP_DISCARD;
        d->flag = rnd() % 2 ? BLKIF_DISCARD_SECURE : 0;
        d->id = p->id;
        d->sector_number = p->sector;
        d->nr_sectors = p->nsect;
        break;
    }
    case K_FLUSH:
        req->operation = BLKIF_OP_FLUSH_DISKCACHE;
        req->nr_segments = 0;
        req->id = p->id;
        break;
    case K_BAD: {
        p->expect = BLKIF_RSP_ERROR;
        req->id = p->id;
        switch (rnd() % 4) {
        case 0: /* past the end of the disk */
            req->operation = BLKIF_OP_READ;
            req->nr_segments = 1;
            req->sector_number = disk_sectors - 4;
            req->seg[0].gref = k * PAGES_PER_SLOT + 1;
            req->seg[0].first_sect = 0;
            req->seg[0].last_sect = 7;
            break;
        case 1: /* first_sect > last_sect */
            req->operation = BLKIF_OP_WRITE;
            req->nr_segments = 1;
            req->sector_number = k * region;
            req->seg[0].gref = k * PAGES_PER_SLOT + 1;
            req->seg[0].first_sect = 5;
            req->seg[0].last_sect = 2;
            break;
        case 2: /* reserved operation */
            req->operation = BLKIF_OP_RESERVED_1;
            break;
        default: /* too many segments */
            req->operation = BLKIF_OP_READ;
            req->nr_segments = BLKIF_MAX_SEGMENTS_PER_REQUEST + 1;
            req->sector_number = k * region;
            break;
        }
        break;
    }
    }
    front->req_prod_pvt++;
}

static void complete(blkif_response_t *rsp, uint64_t *done)
{
    int k = rsp->id % NSLOT;
    struct pending *p = &slots[k];
    if (!p->busy || p->id != rsp->id) die("response for unknown id", (long)rsp->id, k);
    if (rsp->status != p->expect) die("unexpected status", (long)rsp->id, rsp->status);
    if (rsp->status == BLKIF_RSP_OKAY) {
        switch (p->kind) {
        case K_WRITE: case K_IND_WRITE: case K_BARRIER: on_write_done(p); break;
        case K_READ: case K_IND_READ: check_read(p); break;
        case K_DISCARD: memset(shadow + p->sector * 512, 0, p->nsect * 512); break;
        default: break;
        }
    }
    p->busy = 0;
    (*done)++;
}

int main(int argc, char **argv)
{
    if (argc != 8) { fprintf(stderr, "usage\n"); return 2; }
    ring_pages = atoi(argv[2]);
    grant_pages = atoi(argv[3]);
    disk_sectors = strtoull(argv[4], 0, 0);
    uint64_t nreq = strtoull(argv[5], 0, 0);
    rng = strtoull(argv[6], 0, 0) | 1;
    max_indirect = atoi(argv[7]);
    region = disk_sectors / NSLOT;
    if (grant_pages < NSLOT * PAGES_PER_SLOT || max_indirect > 64 || max_indirect < 12) die("bad arguments", grant_pages, max_indirect);
    size_t len = (size_t)(ring_pages + grant_pages + 1) * PAGE;
    int fd = open(argv[1], O_RDWR);
    if (fd < 0) die("open", errno, 0);
    base = mmap(0, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) die("mmap", errno, 0);
    shadow = calloc(disk_sectors, 512);

    blkif_sring_t *sring = (blkif_sring_t *)base;
    blkif_front_ring_t front;
    SHARED_RING_INIT(sring);
    FRONT_RING_INIT(&front, sring, ring_pages * PAGE);
    volatile uint32_t *ctl = (volatile uint32_t *)(base + (size_t)(ring_pages + grant_pages) * PAGE);
    xen_mb();
    ctl[0] = MAGIC;

    uint64_t issued = 0, done = 0, notifies = 0;
    double deadline = now() + 120;
    while (done < nreq) {
        int pushed = 0;
        for (int k = 0; k < NSLOT && issued < nreq; k++) {
            if (slots[k].busy || RING_FULL(&front)) continue;
            issue(&front, k, issued / NSLOT + 1);
            issued++;
            pushed++;
        }
        if (pushed) {
            int notify;
            RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&front, notify);
            notifies += notify;
        }
        int more;
        do {
            RING_IDX rp = sring->rsp_prod;
            xen_rmb();
            if (RING_RESPONSE_PROD_OVERFLOW(&front, rp)) die("backend response overflow", rp, front.rsp_cons);
            for (RING_IDX i = front.rsp_cons; i != rp; i++) {
                blkif_response_t rsp;
                RING_COPY_RESPONSE(&front, i, &rsp);
                complete(&rsp, &done);
            }
            front.rsp_cons = rp;
            RING_FINAL_CHECK_FOR_RESPONSES(&front, more);
        } while (more);
        if (now() > deadline) die("timed out", (long)done, (long)nreq);
        sched_yield();
    }
    /* Read the whole disk back through the backend and compare. */
    uint64_t chunk = 8 * BLKIF_MAX_SEGMENTS_PER_REQUEST;
    for (uint64_t s = 0; s < disk_sectors; s += chunk) {
        struct pending *p = &slots[0];
        memset(p, 0, sizeof(*p));
        p->busy = 1; p->kind = K_READ; p->id = 0xF000000000000000ull | s; p->sector = s;
        p->expect = BLKIF_RSP_OKAY;
        uint64_t n = disk_sectors - s < chunk ? disk_sectors - s : chunk;
        blkif_request_t *req = RING_GET_REQUEST(&front, front.req_prod_pvt);
        memset(req, 0, sizeof(*req));
        req->operation = BLKIF_OP_READ; req->id = p->id; req->sector_number = s;
        p->nseg = (n + 7) / 8;
        req->nr_segments = p->nseg;
        for (int i = 0; i < p->nseg; i++) {
            p->seg[i].gref = 1 + i; p->seg[i].first = 0; p->seg[i].last = (i + 1) * 8 <= (int)n ? 7 : (n % 8) - 1;
            req->seg[i].gref = p->seg[i].gref; req->seg[i].first_sect = 0; req->seg[i].last_sect = p->seg[i].last;
        }
        front.req_prod_pvt++;
        int notify;
        RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&front, notify);
        notifies += notify;
        for (;;) {
            RING_IDX rp = sring->rsp_prod;
            xen_rmb();
            if (rp != front.rsp_cons) {
                blkif_response_t rsp;
                RING_COPY_RESPONSE(&front, front.rsp_cons, &rsp);
                front.rsp_cons++;
                if (rsp.id != p->id || rsp.status != BLKIF_RSP_OKAY) die("final read failed", (long)s, rsp.status);
                check_read(p);
                break;
            }
            if (now() > deadline) die("timed out in final read", (long)s, 0);
            sched_yield();
        }
    }
    printf("ok %llu notifies %llu ring %u\n", (unsigned long long)done, (unsigned long long)notifies, RING_SIZE(&front));
    ctl[1] = 1;
    return 0;
}
