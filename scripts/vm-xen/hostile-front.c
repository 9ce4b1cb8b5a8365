/* A hostile blkif frontend for the Xen VM test, run in dom0 against a blkif
 * backend in dom0 (our xen-blkback, or the kernel's for a cross-check).
 *
 *   hostile-front BACKEND-TYPE DEVID PARAMS [PHYSICAL-DEVICE]
 *
 * Writes the frontend keys of a fake vbd under /local/domain/0/device/hostile/DEVID
 * (a device class no kernel frontend drives) and the backend keys under
 * /local/domain/0/backend/BACKEND-TYPE/0/DEVID (params=PARAMS; PHYSICAL-DEVICE
 * "major:minor" in hex for the kernel's "vbd" backend, which has no hotplug script
 * here), grants a ring page, a data page and an indirect page with /dev/xen/gntalloc,
 * binds an unbound event channel, connects, and then sends one valid read (the ring
 * works) followed by garbage: unknown operations, 0, 12 and 255 segments, bad grant
 * references, bad sector ranges, requests past the end of the disk, oversized and
 * bad indirect requests, a discard past the end, another valid read (the ring still
 * works), and last a req_prod far beyond the ring size. Each garbage response must be
 * BLKIF_RSP_ERROR or BLKIF_RSP_EOPNOTSUPP with the request's id; after the bogus
 * req_prod the backend may stop answering, but must not answer more than a ring's
 * worth. Prints one line per case and "hostile: N cases, M bad"; exit status 0 only
 * if no case was bad. The caller checks the backend process is still alive. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <stdarg.h>
#include <fcntl.h>
#include <unistd.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#define mb() __sync_synchronize()
#define rmb() __sync_synchronize()
#define wmb() __sync_synchronize()
#define xen_mb() __sync_synchronize()
#define xen_rmb() __sync_synchronize()
#define xen_wmb() __sync_synchronize()
#include <xen/io/blkif.h> /* libxen-dev */
#include <xen/gntalloc.h> /* linux-libc-dev uapi */
#include <xen/evtchn.h>

#define BAD_GREF 0x7ffffff0u
static char fe[256], be[256];
static int efd, lport, bad, cases;
static blkif_front_ring_t ring;
static uint32_t ring_gref, data_gref, ind_gref;
static void *ind_page;

static void xs_write(const char *fmt, ...) {
  char cmd[2048] = "xenstore-write ";
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), fmt, ap);
  va_end(ap);
  if (system(cmd) != 0) { fprintf(stderr, "hostile: failed: %s\n", cmd); exit(1); }
}
static long xs_read(const char *path) {
  char cmd[512], buf[64] = "";
  snprintf(cmd, sizeof cmd, "xenstore-read %s 2>/dev/null", path);
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  char *ok = fgets(buf, sizeof buf, p);
  pclose(p);
  return ok ? strtol(buf, NULL, 10) : -1;
}
static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}
static int wait_state(const char *dir, long want, double secs) {
  char k[300];
  snprintf(k, sizeof k, "%s/state", dir);
  for (double end = now() + secs; now() < end; usleep(100000))
    if (xs_read(k) == want) return 1;
  return 0;
}
static void notify(void) {
  struct ioctl_evtchn_notify n = { .port = lport };
  ioctl(efd, IOCTL_EVTCHN_NOTIFY, &n);
}
static void *grant(int fd, uint32_t *gref) {
  struct ioctl_gntalloc_alloc_gref a = { .domid = 0, .flags = GNTALLOC_FLAG_WRITABLE, .count = 1 };
  if (ioctl(fd, IOCTL_GNTALLOC_ALLOC_GREF, &a)) { perror("hostile: IOCTL_GNTALLOC_ALLOC_GREF"); exit(1); }
  void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, a.index);
  if (p == MAP_FAILED) { perror("hostile: mmap gntalloc"); exit(1); }
  memset(p, 0, 4096);
  *gref = a.gref_ids[0];
  return p;
}

/* Push one raw request (112 bytes of whatever the case builds), wait for its response. */
static int submit(const char *name, const void *req, uint64_t id, int want_ok) {
  memcpy(RING_GET_REQUEST(&ring, ring.req_prod_pvt), req, sizeof(blkif_request_t));
  ring.req_prod_pvt++;
  int n __attribute__((unused));
  RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&ring, n);
  notify();
  cases++;
  for (double end = now() + 5; now() < end; usleep(2000)) {
    RING_IDX rp = ring.sring->rsp_prod;
    xen_rmb();
    if (ring.rsp_cons == rp) continue;
    blkif_response_t r = *RING_GET_RESPONSE(&ring, ring.rsp_cons);
    ring.rsp_cons++;
    int good = r.id == id && (want_ok ? r.status == BLKIF_RSP_OKAY
                                      : (r.status == BLKIF_RSP_ERROR || r.status == BLKIF_RSP_EOPNOTSUPP));
    printf("hostile: %-22s id=%llu status=%d %s\n", name, (unsigned long long)r.id, r.status, good ? "ok" : "BAD");
    bad += !good;
    return good;
  }
  printf("hostile: %-22s no response in 5 s BAD\n", name);
  bad++;
  return 0;
}
static void rw(const char *name, uint64_t id, uint8_t op, uint8_t nseg, uint64_t sector, uint32_t gref,
               uint8_t first, uint8_t last, int want_ok) {
  blkif_request_t r;
  memset(&r, 0, sizeof r);
  r.operation = op; r.nr_segments = nseg; r.handle = 0; r.id = id; r.sector_number = sector;
  for (int i = 0; i < BLKIF_MAX_SEGMENTS_PER_REQUEST; i++) {
    r.seg[i].gref = gref; r.seg[i].first_sect = first; r.seg[i].last_sect = last;
  }
  submit(name, &r, id, want_ok);
}
static void indirect(const char *name, uint64_t id, uint8_t inner, uint16_t nseg, uint32_t igref,
                     uint32_t seg_gref) {
  union { blkif_request_t pad; blkif_request_indirect_t r; } u;
  memset(&u, 0, sizeof u);
  u.r.operation = BLKIF_OP_INDIRECT; u.r.indirect_op = inner; u.r.nr_segments = nseg; u.r.id = id;
  for (int i = 0; i < BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST; i++) u.r.indirect_grefs[i] = igref;
  struct blkif_request_segment *s = ind_page;
  for (int i = 0; i < 4096 / (int)sizeof *s; i++) { s[i].gref = seg_gref; s[i].first_sect = 0; s[i].last_sect = 7; }
  submit(name, &u, id, 0);
}

int main(int argc, char **argv) {
  if (argc < 4) { fprintf(stderr, "usage: %s BACKEND-TYPE DEVID PARAMS [PHYSICAL-DEVICE]\n", argv[0]); return 2; }
  const char *type = argv[1], *devid = argv[2], *params = argv[3];
  snprintf(fe, sizeof fe, "/local/domain/0/device/hostile/%s", devid);
  snprintf(be, sizeof be, "/local/domain/0/backend/%s/0/%s", type, devid);
  setvbuf(stdout, NULL, _IOLBF, 0);

  xs_write("%s/backend %s %s/backend-id 0 %s/virtual-device %s %s/device-type disk", fe, be, fe, fe, devid, fe);
  xs_write("%s/state 1", fe);
  xs_write("%s/frontend %s %s/frontend-id 0 %s/online 1 %s/removable 0 %s/bootable 1 %s/dev xvdy %s/type %s "
           "%s/mode w %s/device-type disk %s/params %s %s/discard-enable 1 %s/state 1",
           be, fe, be, be, be, be, be, be, type, be, be, be, params, be, be);
  /* state 1 goes in the same transaction as the other keys, as xl writes
   * them: a backend that starts on those keys and answers InitWait at once
   * must not have its 2 overwritten by a later 1. The kernel's blkback
   * starts on physical-device, written after, as the hotplug script does. */
  if (argc > 4) xs_write("%s/physical-device %s", be, argv[4]);
  if (!wait_state(be, 2, 10)) { printf("hostile: backend never reached InitWait BAD\n"); return 1; }

  int gfd = open("/dev/xen/gntalloc", O_RDWR);
  efd = open("/dev/xen/evtchn", O_RDWR);
  if (gfd < 0 || efd < 0) { perror("hostile: open /dev/xen/gntalloc or evtchn"); return 1; }
  blkif_sring_t *sring = grant(gfd, &ring_gref);
  void *data = grant(gfd, &data_gref);
  ind_page = grant(gfd, &ind_gref);
  (void)data;
  SHARED_RING_INIT(sring);
  FRONT_RING_INIT(&ring, sring, 4096);
  struct ioctl_evtchn_bind_unbound_port b = { .remote_domain = 0 };
  lport = ioctl(efd, IOCTL_EVTCHN_BIND_UNBOUND_PORT, &b);
  if (lport < 0) { perror("hostile: IOCTL_EVTCHN_BIND_UNBOUND_PORT"); return 1; }
  xs_write("%s/ring-ref %u %s/event-channel %d %s/protocol x86_64-abi", fe, ring_gref, fe, lport, fe);
  xs_write("%s/state 3", fe);
  if (!wait_state(be, 4, 10)) { printf("hostile: backend never reached Connected BAD\n"); return 1; }
  char k[300];
  snprintf(k, sizeof k, "%s/sectors", be);
  long sectors = xs_read(k);
  printf("hostile: connected, ring-ref %u, port %d, %ld sectors, ring size %u\n", ring_gref, lport, sectors,
         RING_SIZE(&ring));
  xs_write("%s/state 4", fe);
  if (sectors <= 16) { printf("hostile: bad sectors key BAD\n"); return 1; }

  uint64_t end = (uint64_t)sectors;
  rw("valid-read", 1, BLKIF_OP_READ, 1, 0, data_gref, 0, 7, 1);
  rw("unknown-op-99", 2, 99, 1, 0, data_gref, 0, 7, 0);
  rw("unknown-op-255", 3, 255, 1, 0, data_gref, 0, 7, 0);
  rw("reserved-op-4", 4, BLKIF_OP_RESERVED_1, 1, 0, data_gref, 0, 7, 0);
  rw("read-0-segments", 5, BLKIF_OP_READ, 0, 0, data_gref, 0, 7, 0);
  rw("read-12-segments", 6, BLKIF_OP_READ, 12, 0, data_gref, 0, 7, 0);
  rw("write-255-segments", 7, BLKIF_OP_WRITE, 255, 0, data_gref, 0, 7, 0);
  rw("read-bad-gref", 8, BLKIF_OP_READ, 1, 0, BAD_GREF, 0, 7, 0);
  rw("write-bad-gref", 9, BLKIF_OP_WRITE, 1, 0, BAD_GREF, 0, 7, 0);
  rw("first-after-last", 10, BLKIF_OP_READ, 1, 0, data_gref, 5, 2, 0);
  rw("last-sect-8", 11, BLKIF_OP_READ, 1, 0, data_gref, 0, 8, 0);
  rw("read-past-end", 12, BLKIF_OP_READ, 1, end, data_gref, 0, 7, 0);
  rw("write-straddles-end", 13, BLKIF_OP_WRITE, 1, end - 4, data_gref, 0, 7, 0);
  rw("read-sector-2^63", 14, BLKIF_OP_READ, 1, 1ull << 63, data_gref, 0, 7, 0);
  indirect("indirect-4096-segs", 15, BLKIF_OP_READ, 4096, ind_gref, data_gref);
  indirect("indirect-65535-segs", 16, BLKIF_OP_WRITE, 65535, ind_gref, data_gref);
  indirect("indirect-bad-igref", 17, BLKIF_OP_READ, 8, BAD_GREF, data_gref);
  indirect("indirect-bad-seg-gref", 18, BLKIF_OP_READ, 8, ind_gref, BAD_GREF);
  indirect("indirect-inner-op-99", 19, 99, 8, ind_gref, data_gref);
  indirect("indirect-inner-indir", 20, BLKIF_OP_INDIRECT, 8, ind_gref, data_gref);
  {
    union { blkif_request_t pad; blkif_request_discard_t d; } u;
    memset(&u, 0, sizeof u);
    u.d.operation = BLKIF_OP_DISCARD; u.d.id = 21; u.d.sector_number = end; u.d.nr_sectors = 8;
    submit("discard-past-end", &u, 21, 0);
    memset(&u, 0, sizeof u);
    u.d.operation = BLKIF_OP_DISCARD; u.d.id = 22; u.d.sector_number = 8; u.d.nr_sectors = ~0ull;
    submit("discard-2^64-sectors", &u, 22, 0);
  }
  rw("valid-read-again", 23, BLKIF_OP_READ, 1, 8, data_gref, 0, 7, 1);

  /* Last: a producer index far beyond the ring. Every slot holds a request from above
   * (some valid): a backend that believed req_prod would answer more than a ring's worth. */
  RING_IDX before = ring.sring->rsp_prod;
  xen_wmb();
  ring.sring->req_prod = ring.req_prod_pvt + 100000;
  xen_wmb();
  notify();
  cases++;
  sleep(3);
  RING_IDX after = ring.sring->rsp_prod;
  unsigned answered = after - before;
  int good = answered <= RING_SIZE(&ring);
  printf("hostile: %-22s %u responses after req_prod+100000 %s\n", "req-prod-far-ahead", answered,
         good ? "ok" : "BAD");
  bad += !good;

  /* Close: the backend should follow to Closed; then drop the keys. */
  xs_write("%s/state 5", fe);
  int closed = wait_state(be, 6, 5) || wait_state(be, 5, 1);
  snprintf(k, sizeof k, "%s/state", be);
  printf("hostile: backend state after frontend Closing: %ld%s\n", xs_read(k), closed ? "" : " (did not close; not counted)");
  xs_write("%s/state 6", fe);
  printf("hostile: %d cases, %d bad\n", cases, bad);
  return bad ? 1 : 0;
}
