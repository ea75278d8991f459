/*
 * Single-instruction oracle for the differential CPU tests, run under qemu-ppc64le.
 *
 * Reads test cases from stdin, each an instruction word and a full register state; for each one it
 * patches the word into the code slot of a trampoline, loads the state into the registers, executes
 * the word, stores the registers back and writes the state (or the signal the word raised) to stdout.
 * One build serves every batch, so a test run compiles it once and streams thousands of cases.
 *
 * Record layout (all little-endian), shared with test/machine/cpu/qemu-oracle.ts:
 *   input:  u32 word, u32 reserved, struct state
 *   output: u32 signal (0: none), u32 reserved, struct state
 *   struct state: u64 r0, r3..r12; u64 fpscr, cr, xer, ctr, reserved, vscr, reserved;
 *                 vs0..vs63 (16 bytes each); the 256-byte memory window
 * Only r0 and r3..r12 are loaded and stored (r31 holds the state pointer, r1/r2/r13 belong to the C
 * runtime); the memory window is a fixed mapping at MEMORY_BASE that the GPRs may point into.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MEMORY_BASE 0x7e000000UL
#define MEMORY_BYTES 256

struct state {
  uint64_t gpr[13]; /* r0, r3..r12 */
  uint64_t fpscr;
  uint64_t cr;
  uint64_t xer;
  uint64_t ctr;
  uint64_t reserved;
  uint64_t vscr;
  uint64_t reserved2;
  uint8_t vsr[64][16]; /* each as the 128-bit value's little-endian bytes (stxv order) */
  uint8_t memory[MEMORY_BYTES];
};

struct input {
  uint32_t word;
  uint32_t reserved;
  struct state state;
};

struct output {
  uint32_t signal;
  uint32_t reserved;
  struct state state;
};

void execute_case(struct state *state);
extern uint32_t instruction_slot[];

#define OFFSET_GPR 0
#define OFFSET_FPSCR 104
#define OFFSET_CR 112
#define OFFSET_XER 120
#define OFFSET_CTR 128
#define OFFSET_VSCR 144
#define OFFSET_VSR 160
_Static_assert(__builtin_offsetof(struct state, fpscr) == OFFSET_FPSCR, "fpscr offset");
_Static_assert(__builtin_offsetof(struct state, vscr) == OFFSET_VSCR, "vscr offset");
_Static_assert(__builtin_offsetof(struct state, vsr) == OFFSET_VSR, "vsr offset");

#define STR2(x) #x
#define STR(x) STR2(x)
#define VSR_OP(op, n) op " " #n ", " STR(OFFSET_VSR) " + 16 * " #n "(31)\n"
#define VSR_ALL(op)                                                                             \
  VSR_OP(op, 0) VSR_OP(op, 1) VSR_OP(op, 2) VSR_OP(op, 3) VSR_OP(op, 4) VSR_OP(op, 5)           \
  VSR_OP(op, 6) VSR_OP(op, 7) VSR_OP(op, 8) VSR_OP(op, 9) VSR_OP(op, 10) VSR_OP(op, 11)         \
  VSR_OP(op, 12) VSR_OP(op, 13) VSR_OP(op, 14) VSR_OP(op, 15) VSR_OP(op, 16) VSR_OP(op, 17)     \
  VSR_OP(op, 18) VSR_OP(op, 19) VSR_OP(op, 20) VSR_OP(op, 21) VSR_OP(op, 22) VSR_OP(op, 23)     \
  VSR_OP(op, 24) VSR_OP(op, 25) VSR_OP(op, 26) VSR_OP(op, 27) VSR_OP(op, 28) VSR_OP(op, 29)     \
  VSR_OP(op, 30) VSR_OP(op, 31) VSR_OP(op, 32) VSR_OP(op, 33) VSR_OP(op, 34) VSR_OP(op, 35)     \
  VSR_OP(op, 36) VSR_OP(op, 37) VSR_OP(op, 38) VSR_OP(op, 39) VSR_OP(op, 40) VSR_OP(op, 41)     \
  VSR_OP(op, 42) VSR_OP(op, 43) VSR_OP(op, 44) VSR_OP(op, 45) VSR_OP(op, 46) VSR_OP(op, 47)     \
  VSR_OP(op, 48) VSR_OP(op, 49) VSR_OP(op, 50) VSR_OP(op, 51) VSR_OP(op, 52) VSR_OP(op, 53)     \
  VSR_OP(op, 54) VSR_OP(op, 55) VSR_OP(op, 56) VSR_OP(op, 57) VSR_OP(op, 58) VSR_OP(op, 59)     \
  VSR_OP(op, 60) VSR_OP(op, 61) VSR_OP(op, 62) VSR_OP(op, 63)
#define GPR_OP(op, reg, slot) op " " #reg ", " #slot " * 8(31)\n"
#define GPR_ALL(op)                                                                             \
  GPR_OP(op, 0, 0) GPR_OP(op, 3, 1) GPR_OP(op, 4, 2) GPR_OP(op, 5, 3) GPR_OP(op, 6, 4)         \
  GPR_OP(op, 7, 5) GPR_OP(op, 8, 6) GPR_OP(op, 9, 7) GPR_OP(op, 10, 8) GPR_OP(op, 11, 9)       \
  GPR_OP(op, 12, 10)

/*
 * The trampoline. Non-volatile state it clobbers (r31, CR2-4, f14-f31, v20-v31) is saved in its
 * frame; VRSAVE is left alone. The FPSCR is cleared on the way out so that the C code after it
 * never runs with exceptions the test enabled.
 */
__asm__(
    ".text\n"
    ".balign 16\n"
    ".globl execute_case\n"
    ".type execute_case, @function\n"
    "execute_case:\n"
    "  mflr 0\n"
    "  std 0, 16(1)\n"
    "  mfcr 0\n"
    "  stw 0, 8(1)\n"
    "  stdu 1, -528(1)\n"
    "  std 31, 32(1)\n"
    "  stfd 14, 40(1)\n stfd 15, 48(1)\n stfd 16, 56(1)\n stfd 17, 64(1)\n stfd 18, 72(1)\n"
    "  stfd 19, 80(1)\n stfd 20, 88(1)\n stfd 21, 96(1)\n stfd 22, 104(1)\n stfd 23, 112(1)\n"
    "  stfd 24, 120(1)\n stfd 25, 128(1)\n stfd 26, 136(1)\n stfd 27, 144(1)\n stfd 28, 152(1)\n"
    "  stfd 29, 160(1)\n stfd 30, 168(1)\n stfd 31, 176(1)\n"
    "  stxv 52, 192(1)\n stxv 53, 208(1)\n stxv 54, 224(1)\n stxv 55, 240(1)\n"
    "  stxv 56, 256(1)\n stxv 57, 272(1)\n stxv 58, 288(1)\n stxv 59, 304(1)\n"
    "  stxv 60, 320(1)\n stxv 61, 336(1)\n stxv 62, 352(1)\n stxv 63, 368(1)\n"
    "  mr 31, 3\n"
    /* VSCR through v0, FPSCR through f0, before the VSRs themselves are loaded. */
    "  lxv 32, " STR(OFFSET_VSCR) "(31)\n"
    "  mtvscr 0\n"
    "  lfd 0, " STR(OFFSET_FPSCR) "(31)\n"
    "  mtfsf 0xff, 0, 1, 0\n"
    VSR_ALL("lxv")
    "  ld 0, " STR(OFFSET_CR) "(31)\n"
    "  mtcrf 0xff, 0\n"
    "  ld 0, " STR(OFFSET_XER) "(31)\n"
    "  mtxer 0\n"
    "  ld 0, " STR(OFFSET_CTR) "(31)\n"
    "  mtctr 0\n"
    GPR_ALL("ld")
    ".globl instruction_slot\n"
    "instruction_slot:\n"
    "  nop\n"
    GPR_ALL("std")
    "  mfcr 0\n"
    "  std 0, " STR(OFFSET_CR) "(31)\n"
    "  mfxer 0\n"
    "  std 0, " STR(OFFSET_XER) "(31)\n"
    "  mfctr 0\n"
    "  std 0, " STR(OFFSET_CTR) "(31)\n"
    VSR_ALL("stxv")
    "  mffs 0\n"
    "  stfd 0, " STR(OFFSET_FPSCR) "(31)\n"
    "  mfvscr 0\n"
    "  stxv 32, 400(1)\n"
    "  lwz 0, 400(1)\n"
    "  std 0, " STR(OFFSET_VSCR) "(31)\n"
    "  li 0, 0\n"
    "  std 0, 384(1)\n"
    "  lfd 0, 384(1)\n"
    "  mtfsf 0xff, 0, 1, 0\n"
    "  lfd 14, 40(1)\n lfd 15, 48(1)\n lfd 16, 56(1)\n lfd 17, 64(1)\n lfd 18, 72(1)\n"
    "  lfd 19, 80(1)\n lfd 20, 88(1)\n lfd 21, 96(1)\n lfd 22, 104(1)\n lfd 23, 112(1)\n"
    "  lfd 24, 120(1)\n lfd 25, 128(1)\n lfd 26, 136(1)\n lfd 27, 144(1)\n lfd 28, 152(1)\n"
    "  lfd 29, 160(1)\n lfd 30, 168(1)\n lfd 31, 176(1)\n"
    "  lxv 52, 192(1)\n lxv 53, 208(1)\n lxv 54, 224(1)\n lxv 55, 240(1)\n"
    "  lxv 56, 256(1)\n lxv 57, 272(1)\n lxv 58, 288(1)\n lxv 59, 304(1)\n"
    "  lxv 60, 320(1)\n lxv 61, 336(1)\n lxv 62, 352(1)\n lxv 63, 368(1)\n"
    "  ld 31, 32(1)\n"
    "  addi 1, 1, 528\n"
    "  lwz 0, 8(1)\n"
    "  mtcrf 0x38, 0\n"
    "  ld 0, 16(1)\n"
    "  mtlr 0\n"
    "  blr\n"
    ".size execute_case, . - execute_case\n");

static sigjmp_buf recover;
static volatile sig_atomic_t raised;

static void on_signal(int number) {
  raised = number;
  siglongjmp(recover, 1);
}

static void clear_fpscr(void) {
  double zero = 0;
  __asm__ volatile("mtfsf 0xff, %0, 1, 0" : : "d"(zero));
}

static int read_exactly(void *buffer, size_t size) {
  uint8_t *p = buffer;
  while (size > 0) {
    ssize_t n = read(0, p, size);
    if (n <= 0) return 0;
    p += n;
    size -= (size_t)n;
  }
  return 1;
}

int main(void) {
  uint8_t *memory = mmap((void *)MEMORY_BASE, 65536, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (memory != (uint8_t *)MEMORY_BASE) {
    perror("mmap of the memory window");
    return 2;
  }
  long page = sysconf(_SC_PAGESIZE);
  uintptr_t slot_page = (uintptr_t)instruction_slot & ~(uintptr_t)(page - 1);
  if (mprotect((void *)slot_page, 2 * page, PROT_READ | PROT_WRITE | PROT_EXEC) != 0) {
    perror("mprotect of the instruction slot");
    return 2;
  }
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = on_signal;
  action.sa_flags = SA_NODEFER;
  sigaction(SIGILL, &action, 0);
  sigaction(SIGTRAP, &action, 0);
  sigaction(SIGFPE, &action, 0);
  sigaction(SIGSEGV, &action, 0);
  sigaction(SIGBUS, &action, 0);

  static struct input in;
  static struct output out;
  while (read_exactly(&in, sizeof in)) {
    instruction_slot[0] = in.word;
    __builtin___clear_cache((char *)instruction_slot, (char *)(instruction_slot + 1));
    memcpy(memory, in.state.memory, MEMORY_BYTES);
    out.state = in.state;
    raised = 0;
    if (sigsetjmp(recover, 1) == 0) {
      execute_case(&out.state);
    } else {
      clear_fpscr();
    }
    out.signal = (uint32_t)raised;
    memcpy(out.state.memory, memory, MEMORY_BYTES);
    if (fwrite(&out, sizeof out, 1, stdout) != 1) return 1;
  }
  return fflush(stdout) == 0 ? 0 : 1;
}
