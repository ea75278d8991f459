// The limits of MachineService.AccessDevices (machine.proto): the machine enforces them, and its
// clients (the storage drivers, vmm's translation batch) split their batches by them.

/** Accesses in one call at most. */
export const MAX_BATCH_ACCESSES = 4096;
/** Bytes read, and bytes written, in one call at most (a reply stays well inside a message). */
export const MAX_BATCH_BYTES = 8 * 1024 * 1024;
