/* Sizes, offsets and ioctl numbers of the gntdev, evtchn and xs_wire UAPI,
 * printed as "name value" lines for tests/header_layout.rs. */
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <sys/ioctl.h>
#include <xen/xen.h>
#include <xen/sys/gntdev.h>
#include <xen/sys/evtchn.h>
#include <xen/io/xs_wire.h>
#include <xen/io/xenbus.h>
#include <xen/grant_table.h>

#define P(n, v) printf("%s %lld\n", n, (long long)(v))
#define S(t) P("sizeof." #t, sizeof(struct t))
#define O(t, f) P(#t "." #f, offsetof(struct t, f))

int main(void) {
  S(ioctl_gntdev_grant_ref); O(ioctl_gntdev_grant_ref, domid); O(ioctl_gntdev_grant_ref, ref);
  S(ioctl_gntdev_map_grant_ref); O(ioctl_gntdev_map_grant_ref, count); O(ioctl_gntdev_map_grant_ref, index);
  O(ioctl_gntdev_map_grant_ref, refs);
  S(ioctl_gntdev_unmap_grant_ref); O(ioctl_gntdev_unmap_grant_ref, index); O(ioctl_gntdev_unmap_grant_ref, count);
  S(ioctl_gntdev_set_max_grants);
  S(ioctl_gntdev_grant_copy_segment); O(ioctl_gntdev_grant_copy_segment, source);
  O(ioctl_gntdev_grant_copy_segment, dest); O(ioctl_gntdev_grant_copy_segment, len);
  O(ioctl_gntdev_grant_copy_segment, flags); O(ioctl_gntdev_grant_copy_segment, status);
  P("ioctl_gntdev_grant_copy_segment.source.foreign.ref", offsetof(struct ioctl_gntdev_grant_copy_segment, source.foreign.ref));
  P("ioctl_gntdev_grant_copy_segment.source.foreign.offset", offsetof(struct ioctl_gntdev_grant_copy_segment, source.foreign.offset));
  P("ioctl_gntdev_grant_copy_segment.source.foreign.domid", offsetof(struct ioctl_gntdev_grant_copy_segment, source.foreign.domid));
  S(ioctl_gntdev_grant_copy); O(ioctl_gntdev_grant_copy, count); O(ioctl_gntdev_grant_copy, segments);
  P("IOCTL_GNTDEV_MAP_GRANT_REF", IOCTL_GNTDEV_MAP_GRANT_REF);
  P("IOCTL_GNTDEV_UNMAP_GRANT_REF", IOCTL_GNTDEV_UNMAP_GRANT_REF);
  P("IOCTL_GNTDEV_SET_MAX_GRANTS", IOCTL_GNTDEV_SET_MAX_GRANTS);
  P("IOCTL_GNTDEV_GRANT_COPY", IOCTL_GNTDEV_GRANT_COPY);
  P("GNTCOPY_source_gref", GNTCOPY_source_gref);
  P("GNTCOPY_dest_gref", GNTCOPY_dest_gref);
  S(ioctl_evtchn_bind_interdomain); O(ioctl_evtchn_bind_interdomain, remote_domain);
  O(ioctl_evtchn_bind_interdomain, remote_port);
  S(ioctl_evtchn_unbind); S(ioctl_evtchn_notify);
  P("IOCTL_EVTCHN_BIND_INTERDOMAIN", IOCTL_EVTCHN_BIND_INTERDOMAIN);
  P("IOCTL_EVTCHN_UNBIND", IOCTL_EVTCHN_UNBIND);
  P("IOCTL_EVTCHN_NOTIFY", IOCTL_EVTCHN_NOTIFY);
  S(xsd_sockmsg); O(xsd_sockmsg, type); O(xsd_sockmsg, req_id); O(xsd_sockmsg, tx_id); O(xsd_sockmsg, len);
  P("XENSTORE_PAYLOAD_MAX", XENSTORE_PAYLOAD_MAX);
  P("XENSTORE_ABS_PATH_MAX", XENSTORE_ABS_PATH_MAX);
#define T(x) P(#x, x);
  T(XS_CONTROL) T(XS_DIRECTORY) T(XS_READ) T(XS_GET_PERMS) T(XS_WATCH) T(XS_UNWATCH)
  T(XS_TRANSACTION_START) T(XS_TRANSACTION_END) T(XS_INTRODUCE) T(XS_RELEASE) T(XS_GET_DOMAIN_PATH)
  T(XS_WRITE) T(XS_MKDIR) T(XS_RM) T(XS_SET_PERMS) T(XS_WATCH_EVENT) T(XS_ERROR)
  T(XS_IS_DOMAIN_INTRODUCED) T(XS_RESUME) T(XS_SET_TARGET) T(XS_RESET_WATCHES) T(XS_DIRECTORY_PART)
  T(XS_INVALID)
  for (size_t i = 0; i < sizeof xsd_errors / sizeof xsd_errors[0]; i++)
    printf("xsd_errors.%zu %s\n", i, xsd_errors[i].errstring);
  T(XenbusStateUnknown) T(XenbusStateInitialising) T(XenbusStateInitWait) T(XenbusStateInitialised)
  T(XenbusStateConnected) T(XenbusStateClosing) T(XenbusStateClosed) T(XenbusStateReconfiguring)
  T(XenbusStateReconfigured)
  return 0;
}
