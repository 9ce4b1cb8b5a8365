/* Userspace stand-in for the kernel's linux/types.h, enough for scsi/srp.h. */
#include <stdint.h>
typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef uint16_t __be16;
typedef uint32_t __be32;
typedef uint64_t __be64;
#define __packed __attribute__((packed))
#define __aligned(x) __attribute__((aligned(x)))
