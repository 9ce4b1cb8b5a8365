/* Stand-in for the kernel scsi/scsi.h: scsi/srp.h needs only struct scsi_lun. */
struct scsi_lun {
	unsigned char scsi_lun[8];
};
