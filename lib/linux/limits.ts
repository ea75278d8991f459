// Limits of the Linux user ABI that both the machine's copy-in and the services enforce.

/** Bytes in a path including its NUL (include/uapi/linux/limits.h). */
export const PATH_MAX = 4096;
/** readv/writev vector count limit. */
export const UIO_MAXIOV = 1024;
/** The base page size of user address spaces here (AT_PAGESZ). */
export const PAGE_SIZE = 4096;
